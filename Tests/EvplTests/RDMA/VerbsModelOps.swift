// The model as a cevpl_rdma_ops table: one @convention(c) function per
// entry, each taking the model's lock around the method that does the work.
import CEvplRDMA
import Glibc

extension VerbsModel {
    static func makeOps() -> cevpl_rdma_ops {
        var o = cevpl_rdma_ops()
        o.get_devices = { list in VerbsModel.shared.locked { VerbsModel.shared.getDevices(list) } }
        o.free_devices = { list in VerbsModel.shared.locked { VerbsModel.shared.freeDevices(list) } }
        o.device_name = { d in VerbsModel.shared.locked { VerbsModel.shared.deviceName(d) } }

        o.alloc_pd = { d in VerbsModel.shared.locked { VerbsModel.shared.allocPD(d) } }
        o.dealloc_pd = { p in VerbsModel.shared.locked { VerbsModel.shared.deallocPD(p) } }
        o.reg_mr = { p, addr, len, lkey, rkey in
            VerbsModel.shared.locked { VerbsModel.shared.regMR(p, addr, len, lkey, rkey) }
        }
        o.dereg_mr = { m in VerbsModel.shared.locked { VerbsModel.shared.deregMR(m) } }

        o.create_comp_channel = { d, fd in VerbsModel.shared.locked { VerbsModel.shared.createCompChannel(d, fd) } }
        o.destroy_comp_channel = { c in VerbsModel.shared.locked { VerbsModel.shared.destroyCompChannel(c) } }
        o.create_cq = { d, cqe, comp in VerbsModel.shared.locked { VerbsModel.shared.createCQ(d, cqe, comp) } }
        o.destroy_cq = { cq in VerbsModel.shared.locked { VerbsModel.shared.destroyCQ(cq) } }
        o.req_notify_cq = { cq in VerbsModel.shared.locked { VerbsModel.shared.reqNotifyCQ(cq) } }
        o.get_cq_event = { c in VerbsModel.shared.locked { VerbsModel.shared.getCQEvent(c) } }
        o.poll_cq = { cq, n, wc in VerbsModel.shared.locked { VerbsModel.shared.pollCQ(cq, n, wc) } }

        o.create_srq = { p, maxWR, maxSGE in VerbsModel.shared.locked { VerbsModel.shared.createSRQ(p, maxWR, maxSGE) } }
        o.destroy_srq = { s in VerbsModel.shared.locked { VerbsModel.shared.destroySRQ(s) } }
        o.post_srq_recv = { s, wr, n in VerbsModel.shared.locked { VerbsModel.shared.postSRQRecv(s, wr, n) } }

        o.create_qp = { id, p, attr, qpn in VerbsModel.shared.locked { VerbsModel.shared.createQP(id, p, attr, qpn) } }
        o.destroy_qp = { id in VerbsModel.shared.locked { VerbsModel.shared.destroyQP(id) } }
        o.post_send = { q, wr, n in VerbsModel.shared.locked { VerbsModel.shared.postSend(q, wr, n) } }
        o.post_recv = { q, wr, n in VerbsModel.shared.locked { VerbsModel.shared.postRecv(q, wr, n) } }

        o.create_ah = { p, attr in VerbsModel.shared.locked { VerbsModel.shared.createAH(p, attr) } }
        o.destroy_ah = { ah in VerbsModel.shared.locked { VerbsModel.shared.destroyAH(ah) } }

        o.create_event_channel = { fd in VerbsModel.shared.locked { VerbsModel.shared.createEventChannel(fd) } }
        o.destroy_event_channel = { ch in VerbsModel.shared.locked { VerbsModel.shared.destroyEventChannel(ch) } }
        o.create_id = { ch, ctx, ud in VerbsModel.shared.locked { VerbsModel.shared.createID(ch, ctx, ud) } }
        o.destroy_id = { id in VerbsModel.shared.locked { VerbsModel.shared.destroyID(id) } }
        o.id_context = { id in VerbsModel.shared.locked { VerbsModel.shared.idContext(id) } }
        o.set_id_context = { id, ctx in VerbsModel.shared.locked { VerbsModel.shared.setIDContext(id, ctx) } }
        o.id_device = { id in VerbsModel.shared.locked { VerbsModel.shared.idDevice(id) } }
        o.bind_addr = { id, sa in VerbsModel.shared.locked { VerbsModel.shared.bindAddr(id, sa) } }
        o.listen = { id, backlog in VerbsModel.shared.locked { VerbsModel.shared.listen(id, backlog) } }
        o.resolve_addr = { id, src, dst, ms in VerbsModel.shared.locked { VerbsModel.shared.resolveAddr(id, src, dst, ms) } }
        o.resolve_route = { id, ms in VerbsModel.shared.locked { VerbsModel.shared.resolveRoute(id, ms) } }
        o.connect = { id, param in VerbsModel.shared.locked { VerbsModel.shared.connect(id, param) } }
        o.accept = { id, param in VerbsModel.shared.locked { VerbsModel.shared.accept(id, param) } }
        o.reject = { id in VerbsModel.shared.locked { VerbsModel.shared.reject(id) } }
        o.disconnect = { id in VerbsModel.shared.locked { VerbsModel.shared.disconnect(id) } }
        o.set_tos = { id, tos in VerbsModel.shared.locked { VerbsModel.shared.setTOS(id, tos) } }
        o.get_event = { ch, e in VerbsModel.shared.locked { VerbsModel.shared.getEvent(ch, e) } }
        o.local_addr = { id, a, len in VerbsModel.shared.locked { VerbsModel.shared.localAddr(id, a, len) } }
        o.peer_addr = { id, a, len in VerbsModel.shared.locked { VerbsModel.shared.peerAddr(id, a, len) } }
        o.path_mtu = { id in VerbsModel.shared.locked { VerbsModel.shared.pathMTU(id) } }
        o.migrate_id = { id, ch in VerbsModel.shared.locked { VerbsModel.shared.migrateID(id, ch) } }
        return o
    }
}
