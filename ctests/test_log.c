/*
 * Logging: the default logger writes one logfmt line per message to stderr
 * (checked in a re-executed copy of this program with stderr on a pipe), and
 * evpl_set_log_fn(fn, NULL) redirects errors to fn with level, module and
 * source file filled in (also from a loop thread).
 */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- child: default logger --------------------------------------------- */

/* Triggers one error with no log function set: a second evpl_init. */
static int
child_default_logger(void)
{
    evpl_init(NULL);
    evpl_init(NULL);
    fflush(stderr);
    return 0;
}

/* Runs this program again with --child-default, stderr on a pipe, and
 * EVPL_LOG_LEVEL unset; returns what the child wrote to stderr. */
static char *
run_child_capture_stderr(const char *self)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        unsetenv("EVPL_LOG_LEVEL");
        execl(self, self, "--child-default", (char *) NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    uint64_t end = now_ms() + 20000;
    for (;;) {
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int left = (int) (end > now_ms() ? end - now_ms() : 0);
        CHECK(left > 0);
        if (poll(&p, 1, left) <= 0) {
            continue;
        }
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
        ssize_t r = read(fds[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        CHECK(r >= 0);
        if (r == 0) {
            break;
        }
        len += (size_t) r;
    }
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    return buf;
}

/* ---- captured log ------------------------------------------------------ */

/* Counts ERROR and WARN lines and keeps the last one; other levels (the
 * library may log INFO lines of its own) are only echoed. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int err_count;
static int err_bad_fields;
static char last_level[32];
static char last_module[128];
static char last_file[256];
static char last_msg[1024];
static int last_line;
static pthread_t last_thread;

static void
capture_log(const char *level, const char *module, const char *srcfile, int lineno,
            const char *fmt, va_list argp)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt ? fmt : "", argp);
    fprintf(stderr, "[captured] %s %s %s:%d %s\n", level ? level : "(null)",
            module ? module : "(null)", srcfile ? srcfile : "(null)", lineno, msg);
    if (!level || (strcmp(level, "ERROR") != 0 && strcmp(level, "WARN") != 0)) {
        return;
    }
    pthread_mutex_lock(&log_mu);
    err_count++;
    if (!module || !srcfile || !fmt) {
        err_bad_fields++;
    }
    snprintf(last_level, sizeof(last_level), "%s", level);
    snprintf(last_module, sizeof(last_module), "%s", module ? module : "");
    snprintf(last_file, sizeof(last_file), "%s", srcfile ? srcfile : "");
    snprintf(last_msg, sizeof(last_msg), "%s", msg);
    last_line = lineno;
    last_thread = pthread_self();
    pthread_mutex_unlock(&log_mu);
}

static int
logged(void)
{
    pthread_mutex_lock(&log_mu);
    int n = err_count;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* The last error/warning line has its origin and message filled in. */
static void
check_last_is_error(void)
{
    pthread_mutex_lock(&log_mu);
    CHECK_EQ(err_bad_fields, 0);
    CHECK(strcmp(last_level, "ERROR") == 0 || strcmp(last_level, "WARN") == 0);
    CHECK(last_module[0] != '\0');
    CHECK(last_file[0] != '\0');
    CHECK(last_msg[0] != '\0');
    CHECK(last_line >= 0);
    pthread_mutex_unlock(&log_mu);
}

static int
rdma_connect_fails(struct evpl *evpl)
{
    struct evpl_endpoint *ep = evpl_endpoint_create("127.0.0.1", 9);
    CHECK(ep != NULL);
    struct evpl_bind *b = evpl_connect(evpl, EVPL_STREAM_RDMACM_RC, NULL, ep, NULL, NULL, NULL);
    evpl_endpoint_close(ep);
    return b == NULL;
}

struct thread_probe {
    int before, after;
    int failed;
    int logged_on_this_thread;
};

/* Runs on the new loop thread: an error logged from there reaches fn. */
static void *
thread_init(struct evpl *evpl, void *private_data)
{
    struct thread_probe *p = private_data;
    p->before = logged();
    p->failed = rdma_connect_fails(evpl);
    p->after = logged();
    pthread_mutex_lock(&log_mu);
    p->logged_on_this_thread = pthread_equal(last_thread, pthread_self());
    pthread_mutex_unlock(&log_mu);
    return p;
}

static void
thread_shutdown(struct evpl *evpl, void *private_data)
{
    (void) evpl;
    (void) private_data;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child-default") == 0) {
        return child_default_logger();
    }
    alarm(50);

    /* Default logger: logfmt on stderr with the documented keys. */
    {
        /* The real path (also right under valgrind, which emulates this
         * readlink), falling back to argv[0]. */
        static char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
            self[n] = '\0';
        } else {
            snprintf(self, sizeof(self), "%s", argv[0]);
        }
        char *out = run_child_capture_stderr(self);
        fprintf(stderr, "child stderr:\n%s", out);
        char *line = strstr(out, "message=\"");
        CHECK(line != NULL);
        /* Narrow to the line that holds the message. */
        while (line > out && line[-1] != '\n') {
            line--;
        }
        char *eol = strchr(line, '\n');
        if (eol) {
            *eol = '\0';
        }
        CHECK(strstr(line, "time=") != NULL);
        CHECK(strstr(line, "level=") != NULL);
        CHECK(strstr(line, "module=") != NULL);
        CHECK(strstr(line, "file=\"") != NULL);
        free(out);
    }

    /* A log function with a NULL flush function: a second evpl_init is
     * reported to it as an ERROR with module and file. */
    evpl_set_log_fn(capture_log, NULL);
    evpl_init(NULL);
    int before = logged();
    evpl_init(NULL);
    CHECK(logged() > before);
    check_last_is_error();
    pthread_mutex_lock(&log_mu);
    CHECK(strcmp(last_level, "ERROR") == 0);
    pthread_mutex_unlock(&log_mu);

    /* Connecting over unavailable RDMA: NULL, one logged line naming it. */
    if (!evpl_protocol_available(EVPL_STREAM_RDMACM_RC)) {
        struct evpl *evpl = test_loop();
        before = logged();
        CHECK(rdma_connect_fails(evpl));
        CHECK_EQ(logged(), before + 1);
        check_last_is_error();
        pthread_mutex_lock(&log_mu);
        CHECK(strcasestr(last_msg, "rdma") != NULL);
        pthread_mutex_unlock(&log_mu);
        evpl_destroy(evpl);

        /* The same from a loop thread's init callback: the log function is
         * called there, on that thread. */
        struct thread_probe probe;
        memset(&probe, 0, sizeof(probe));
        struct evpl_thread *t = evpl_thread_create(NULL, thread_init, thread_shutdown, &probe);
        CHECK(t != NULL);
        CHECK(probe.failed);
        CHECK_EQ(probe.after, probe.before + 1);
        CHECK(probe.logged_on_this_thread);
        check_last_is_error();
        evpl_thread_destroy(t);
    } else {
        fprintf(stderr, "RDMA available here: unavailable-protocol log check not run\n");
    }
    return 0;
}
