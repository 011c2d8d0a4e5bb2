/*
 * test_observer_page.c - the observer's page (vm/observer/) in a real
 * browser, against a live VM.
 *
 * The test starts a VM with the observer on a free port, some processes
 * (one registered, linked, monitoring, with unread messages), and a
 * supervision tree one of whose children crashes once and is restarted.
 * Then it runs Debian's chromium headless on the page (--dump-dom, with a
 * virtual-time budget of a few seconds: the page polls the API several
 * times before the DOM is taken) and reads the DOM: the process table has
 * the registered process's row with its live figures, the tree shows the
 * supervisor and the restarted child's count, every chart drew samples
 * (the page leaves data-samples on each canvas), the page polled more
 * than once, and no script error happened (the page keeps the first one
 * in data-error on <html>, chromium's console has no "Uncaught"). The
 * second test checks that names from programs are shown as text, never
 * markup, that the kill button is offered only when the observer may
 * kill, and that a connected krill node's observer is a link (the peer is
 * build/<flavour>/krnode --observer). /metrics is checked against the
 * Prometheus text format.
 *
 * chromium runs natively as a separate program in every flavour (under
 * qemu, the aarch64 test binary starts the x86-64 browser); without it
 * the tests skip, as the BEAM's do without erl.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist_util.h"
#include "krill.h"
#include "vm_util.h"

TestSuite(observer_page, .fini = vm_fini, .timeout = 240);

/* The browser's whole run, and an HTTP answer, may take this long under
 * qemu or TSan (the server is slow there; the browser is not). */
#define BROWSER_MS 90000
#define HTTP_MS 20000

/* ---- a little HTTP client ------------------------------------------------ */

/* method path on 127.0.0.1:port; the whole answer into buf (NUL-ended).
 * Returns the status, with *body at the body; -1 if there was no answer. */
static int http(int port, const char *method, const char *path, char *buf, size_t cap,
                char **body)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	char req[512];
	int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	                 "Connection: close\r\nContent-Length: 0\r\n\r\n", method, path, port);
	cr_assert_eq(write(fd, req, (size_t)n), n);
	size_t len = 0;
	int64_t end = vm_now_ns() + (int64_t)HTTP_MS * 1000000;
	char *head_end = NULL;
	long want = -1;
	while (len + 1 < cap && vm_now_ns() < end) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = 0;
		if (!head_end && (head_end = strstr(buf, "\r\n\r\n"))) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");
			if (cl && cl < head_end)
				want = strtol(cl + 17, NULL, 10);
		}
		if (head_end && want >= 0 && (long)(len - (size_t)(head_end + 4 - buf)) >= want)
			break;
	}
	close(fd);
	buf[len] = 0;
	int status = -1;
	if (!head_end || sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	*body = head_end + 4;
	return status;
}

/* How many samples /api/stats holds now. */
static int stats_samples(int port)
{
	static char buf[1 << 20];
	char *body;
	if (http(port, "GET", "/api/stats", buf, sizeof buf, &body) != 200)
		return -1;
	int n = 0;
	for (const char *p = body; (p = strstr(p, "\"t\":")); p++)
		n++;
	return n;
}

/* ---- the browser --------------------------------------------------------- */

/* chromium, or the program KR_CHROMIUM names; NULL if there is none. */
static const char *chromium(void)
{
	const char *c = getenv("KR_CHROMIUM");
	if (c && *c)
		return access(c, X_OK) == 0 ? c : NULL;
	return access("/usr/bin/chromium", X_OK) == 0 ? "/usr/bin/chromium" : NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(path);
}

/* Read fd into a growing buffer until EOF or the deadline: NUL-ended. */
static char *slurp(int fd, int64_t end, size_t *len)
{
	size_t cap = 1 << 16;
	char *s = malloc(cap);
	cr_assert(s);
	*len = 0;
	while (vm_now_ns() < end) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		if (*len + 1 >= cap) {
			cap *= 2;
			s = realloc(s, cap);
			cr_assert(s);
		}
		ssize_t r = read(fd, s + *len, cap - 1 - *len);
		if (r <= 0)
			break;
		*len += (size_t)r;
	}
	s[*len] = 0;
	return s;
}

typedef struct page {
	char *dom;     /* the DOM as chromium serialised it */
	char log[8192];/* chromium's console lines (errors, logs) */
} page;

/* Keep the console's lines of chromium's log (stderr), for the messages. */
static void keep_console(page *p, const char *err)
{
	size_t n = 0;
	for (const char *l = err; *l; l = strchrnul(l, '\n') + (*strchrnul(l, '\n') != 0)) {
		size_t ll = (size_t)(strchrnul(l, '\n') - l);
		if (memmem(l, ll, ":CONSOLE", 8) && n + ll + 2 < sizeof p->log) {
			memcpy(p->log + n, l, ll);
			n += ll;
			p->log[n++] = '\n';
		}
	}
	p->log[n] = 0;
}

/*
 * Open url in headless chromium for budget_ms of virtual time (timers run
 * fast while the page waits for nothing but them; a fetch in flight holds
 * the clock) and take the DOM. chromium runs with an environment of its
 * own (not qemu's, not the sanitizers') and a fresh profile, in a process
 * group of its own that is killed if it overstays.
 */
static void browse(page *p, const char *url, int budget_ms)
{
	const char *exe = chromium();
	char dir[] = "/tmp/krill-obs-XXXXXX";
	cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	char profile[64], budget[64], home[64], errpath[64];
	snprintf(profile, sizeof profile, "--user-data-dir=%s/profile", dir);
	snprintf(budget, sizeof budget, "--virtual-time-budget=%d", budget_ms);
	snprintf(home, sizeof home, "HOME=%s", dir);
	snprintf(errpath, sizeof errpath, "%s/stderr", dir);
	char *argv[] = { (char *)exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		         "--no-default-browser-check", "--disable-dev-shm-usage", "--enable-logging=stderr",
		         "--window-size=1400,1000", profile, budget, "--dump-dom", (char *)url, NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", home, "LANG=C.UTF-8", NULL };

	int out[2];
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	pid_t pid;
	int rc = posix_spawn(&pid, exe, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(out[1]);
	cr_assert_eq(rc, 0, "cannot start %s: %s", exe, strerror(rc));

	size_t len;
	p->dom = slurp(out[0], vm_now_ns() + (int64_t)BROWSER_MS * 1000000, &len);
	close(out[0]);
	kill(-pid, SIGKILL); /* its helpers too, should any linger */
	int st;
	waitpid(pid, &st, 0);

	FILE *f = fopen(errpath, "r");
	static char err[1 << 18];
	size_t en = f ? fread(err, 1, sizeof err - 1, f) : 0;
	err[en] = 0;
	if (f)
		fclose(f);
	keep_console(p, err);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	cr_assert(len > 0 && strstr(p->dom, "</html>"),
	          "chromium gave no DOM (status %d); its log ends:\n%s", st,
	          en > 2000 ? err + en - 2000 : err);
}

/* ---- reading the DOM -------------------------------------------------------- */

/* The text between the start tag that contains key (an attribute, say
 * id="trees") and the end of that element (its end tag of the same name,
 * nesting counted); a malloc'd copy, or NULL. */
static char *element(const char *dom, const char *key)
{
	const char *k = strstr(dom, key);
	if (!k)
		return NULL;
	const char *start = k;
	while (start > dom && *start != '<')
		start--;
	char name[16], open[20], close_[20];
	int n = 0;
	while (n < 15 && isalnum((unsigned char)start[1 + n])) {
		name[n] = start[1 + n];
		n++;
	}
	name[n] = 0;
	snprintf(open, sizeof open, "<%s", name);
	snprintf(close_, sizeof close_, "</%s>", name);
	int depth = 0;
	for (const char *q = start; *q; q++) {
		if (!strncmp(q, open, strlen(open)) && !isalnum((unsigned char)q[strlen(open)]))
			depth++;
		else if (!strncmp(q, close_, strlen(close_)) && --depth == 0)
			return strndup(start, (size_t)(q + strlen(close_) - start));
	}
	return NULL;
}

/* The start tag that contains key, as a malloc'd copy, or NULL. */
static char *start_tag(const char *dom, const char *key)
{
	const char *k = strstr(dom, key);
	if (!k)
		return NULL;
	const char *s = k, *e = strchr(k, '>');
	while (s > dom && *s != '<')
		s--;
	return e ? strndup(s, (size_t)(e + 1 - s)) : NULL;
}

/* The value of attribute name in tag, as a number; -1 if it is absent. */
static long attr_num(const char *tag, const char *name)
{
	char pat[64];
	snprintf(pat, sizeof pat, " %s=\"", name);
	const char *a = tag ? strstr(tag, pat) : NULL;
	return a ? strtol(a + strlen(pat), NULL, 10) : -1;
}

/* The text of cell i (0-based) of the row element: tags dropped. */
static void cell_text(const char *row, int i, char *out, size_t cap)
{
	const char *c = row;
	for (int k = 0; k <= i; k++)
		if (!c || !(c = strstr(c + 1, "<td")))
			break;
	size_t n = 0;
	if (c) {
		int in_tag = 0;
		for (c = strchr(c, '>') + 1; *c && strncmp(c, "</td>", 5) && n + 1 < cap; c++) {
			if (*c == '<')
				in_tag = 1;
			else if (*c == '>')
				in_tag = 0;
			else if (!in_tag)
				out[n++] = *c;
		}
	}
	out[n] = 0;
}

/* Which column of the process table shows key (its <th data-key>), or -1. */
static int column(const char *table, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "data-key=\"%s\"", key);
	const char *at = strstr(table, pat);
	if (!at)
		return -1;
	int i = 0;
	for (const char *q = strstr(table, "<th "); q && q < at; q = strstr(q + 1, "<th "))
		i++;
	return i - 1; /* at is inside its own <th ...> */
}

/* The process table's cell of pid's row in column key, as text. */
static bool table_cell(const char *dom, kr_pid pid, const char *key, char *out, size_t cap)
{
	char *table = element(dom, "id=\"proc-table\"");
	char pat[64];
	snprintf(pat, sizeof pat, "<tr data-pid=\"%lld\"", (long long)pid);
	char *row = table ? element(table, pat) : NULL;
	int col = table ? column(table, key) : -1;
	if (row && col >= 0)
		cell_text(row, col, out, cap);
	free(row);
	free(table);
	return row && col >= 0;
}

/* Every chart's canvas drew at least min samples: NULL, or the first that
 * did not (its id). */
static const char *chart_short_of(const char *dom, long min, long *got)
{
	static const char *ids[] = { "c-util", "c-runq", "c-steals", "c-procs", "c-msgs", "c-faults",
		                     "c-mem" };
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		char pat[32];
		snprintf(pat, sizeof pat, "id=\"%s\"", ids[i]);
		char *tag = start_tag(dom, pat);
		*got = attr_num(tag, "data-samples");
		long points = attr_num(tag, "data-points");
		free(tag);
		if (*got < min || points < *got)
			return ids[i];
	}
	return NULL;
}

/* No script error: the page's own record (data-error on <html>), and the
 * console's uncaught exceptions. */
static void assert_no_script_error(const page *p)
{
	char *html = start_tag(p->dom, "<html");
	const char *e = html ? strstr(html, "data-error=") : NULL;
	cr_assert_null(e, "the page reports a script error: %s\nconsole:\n%s", e, p->log);
	free(html);
	cr_assert_null(strstr(p->log, "Uncaught"), "an uncaught exception in the page:\n%s", p->log);
}

/* ---- /metrics: the Prometheus text format, lightly ---------------------- */

static bool metric_name(const char *s, size_t n)
{
	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
			return false;
	return true;
}

/* Check one exposition (0.0.4): # HELP and # TYPE lines name valid
 * metrics, each sample's family was TYPEd before it, counters' samples end
 * in _total, labels are name="value" lists, values are numbers. Returns
 * how many samples had a scheduler label, for the caller to check. */
static int check_prometheus(char *text)
{
	static char typed[256][128];
	int ntyped = 0, samples = 0, per_sched = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char name[128];
		if (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7)) {
			size_t n = strcspn(line + 7, " ");
			cr_assert(metric_name(line + 7, n) && n < sizeof name, "bad metric name: %s", line);
			if (line[2] == 'T') {
				const char *type = line + 7 + n + 1;
				cr_assert(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
				          !strcmp(type, "histogram") || !strcmp(type, "summary") ||
				          !strcmp(type, "untyped"), "bad type: %s", line);
				cr_assert(ntyped < 256);
				snprintf(typed[ntyped++], sizeof typed[0], "%.*s%s", (int)n, line + 7,
				         strcmp(type, "counter") ? "" : " counter");
			}
			continue;
		}
		if (line[0] == '#' || !line[0])
			continue;
		size_t n = strcspn(line, "{ ");
		cr_assert(metric_name(line, n) && n < sizeof name, "bad sample line: %s", line);
		snprintf(name, sizeof name, "%.*s", (int)n, line);
		const char *rest = line + n;
		if (*rest == '{') {
			if (strstr(rest, "scheduler=\""))
				per_sched++;
			rest++;
			while (*rest != '}') {
				size_t ln = strcspn(rest, "=");
				cr_assert(metric_name(rest, ln) && rest[ln + 1] == '"', "bad label: %s", line);
				rest += ln + 2;
				while (*rest && *rest != '"')
					rest += *rest == '\\' ? 2 : 1;
				cr_assert(*rest == '"', "unterminated label value: %s", line);
				rest++;
				if (*rest == ',')
					rest++;
				cr_assert(*rest, "unterminated labels: %s", line);
			}
			rest++;
		}
		cr_assert(*rest == ' ', "no value: %s", line);
		char *end;
		strtod(rest + 1, &end);
		cr_assert(end > rest + 1 && (*end == 0 || *end == ' '), "bad value: %s", line);
		bool found = false;
		for (int i = 0; i < ntyped && !found; i++) {
			size_t tn = strcspn(typed[i], " ");
			bool counter = strstr(typed[i], " counter") != NULL;
			/* A counter's samples are its name, or the name with _total. */
			found = (tn == strlen(name) && !strncmp(typed[i], name, tn)) ||
			        (counter && tn + 6 == strlen(name) && !strncmp(typed[i], name, tn) &&
			         !strcmp(name + tn, "_total"));
			if (found && counter)
				cr_assert(strlen(name) > 6 && !strcmp(name + strlen(name) - 6, "_total"),
				          "a counter's sample without _total: %s", line);
		}
		cr_assert(found, "a sample of a family never TYPEd before it: %s", line);
		samples++;
	}
	cr_assert_gt(samples, 0, "no samples in /metrics");
	return per_sched;
}

/* ---- the VM the page looks at ---------------------------------------------- */

enum { STOP = 1, JUNK = 2 };

#define REG_NAME "obs_page_reg"
#define UNREAD 7

static atomic_llong partner_pid, watched_pid, reg_pid;
static atomic_int crashes;

/* Waits for STOP only, so the JUNK the test sends stays in its mailbox. */
static void registered(void *arg)
{
	(void)arg;
	VM_CHECK(kr_register(REG_NAME, kr_self()) == 0, "kr_register");
	VM_CHECK(kr_link((kr_pid)atomic_load(&partner_pid)) == 0, "kr_link");
	VM_CHECK(kr_monitor((kr_pid)atomic_load(&watched_pid)) > 0, "kr_monitor");
	atomic_store(&reg_pid, kr_self());
	kr_msg *m; /* for ever: waking now and then, it might be caught running */
	if (kr_recv_tag(&m, STOP, KR_INFINITY) == 0)
		kr_msg_free(m);
}

/* The supervised worker whose first run crashes; its later runs wait. */
static void crasher(void *arg)
{
	(void)arg;
	if (atomic_fetch_add(&crashes, 1) == 0) {
		kr_sleep(20);
		kr_crash("crashing once, on purpose");
	}
	vm_wait_forever(NULL);
}

static void inner_sup(void *arg)
{
	(void)arg;
	static const kr_child_spec kids[] = { { .id = "leaf", .start = vm_wait_forever } };
	static const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE };
	kr_sup_run(&flags, kids, 1);
}

typedef struct scene {
	int port;
	kr_pid sup, crasher, reg, partner, watched;
	char url[128];
} scene;

/* The child with this id under sup (0 if none). */
static kr_pid child_of(kr_pid sup, const char *id, unsigned *restarts)
{
	kr_sup_child v[8];
	int n = kr_sup_which_children(sup, v, 8);
	for (int i = 0; i < n && i < 8; i++)
		if (!strcmp(v[i].id, id)) {
			if (restarts)
				*restarts = v[i].restarts;
			return v[i].pid;
		}
	return 0;
}

/*
 * Start the VM, the observer (allow_kill as given), the processes and the
 * tree; wait until the crasher has been restarted and the observer holds
 * two samples, so that every chart has a line to draw.
 */
static void scene_start(scene *s, bool allow_kill, const char *crasher_label)
{
	memset(s, 0, sizeof *s);
	atomic_store(&crashes, 0);
	atomic_store(&reg_pid, 0);
	vm_start_quiet(2);
	kr_observer_opts o = { .port = 0, .allow_kill = allow_kill };
	int rc = kr_observer_start_opts(&o);
	cr_assert_eq(rc, 0, "kr_observer_start_opts: %d (%s)", rc, kr_strerror(rc));
	s->port = kr_observer_port();
	cr_assert_gt(s->port, 0, "kr_observer_port: %d", s->port);

	s->partner = vm_spawn(vm_wait_forever, NULL);
	s->watched = vm_spawn(vm_wait_forever, NULL);
	atomic_store(&partner_pid, s->partner);
	atomic_store(&watched_pid, s->watched);
	kr_spawn_opts so = { .name = "obs page reg" };
	kr_pid r = kr_spawn_opt(registered, NULL, &so);
	cr_assert_gt(r, 0);
	cr_assert(VM_WAIT(atomic_load(&reg_pid) == r, 20000), "the registered process did not start");
	s->reg = r;
	for (int i = 0; i < UNREAD; i++)
		cr_assert_eq(kr_send(r, JUNK, &i, sizeof i), 0);

	const kr_child_spec kids[] = {
		{ .id = "steady", .start = vm_wait_forever },
		{ .id = "crasher", .start = crasher, .name = crasher_label },
		{ .id = "inner", .start = inner_sup, .type = KR_SUPERVISOR },
	};
	const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 5, .period_ms = 60000 };
	s->sup = kr_sup_start_link(&flags, kids, 3, "obs_page_sup");
	cr_assert_gt(s->sup, 0, "kr_sup_start_link: %lld", (long long)s->sup);
	unsigned restarts = 0;
	cr_assert(VM_WAIT((s->crasher = child_of(s->sup, "crasher", &restarts)) > 0 && restarts >= 1,
	                  20000), "the crasher was not restarted");
	cr_assert(VM_WAIT(stats_samples(s->port) >= 2, 30000), "the observer took no two samples");
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/#pid=%lld", s->port, (long long)s->reg);
}

static void scene_stop(void)
{
	cr_assert_eq(kr_observer_stop(), 0);
	vm_stop();
}

/* ---- the tests -------------------------------------------------------------- */

Test(observer_page, the_page_shows_the_table_the_tree_the_charts_and_a_process_live)
{
	if (!chromium())
		cr_skip_test("no chromium (scripts/deps.sh native installs it)");
	scene s;
	scene_start(&s, true, NULL);
	page p;
	browse(&p, s.url, 5000);
	assert_no_script_error(&p);

	/* Live: the page polled again and again without being reloaded. */
	char *tag = start_tag(p.dom, "data-polls=");
	long polls = attr_num(tag, "data-polls");
	free(tag);
	cr_assert_geq(polls, 2, "the page polled %ld times", polls);

	/* The table: rows, and the registered process's with its figures. */
	tag = start_tag(p.dom, "id=\"proc-table\"");
	long rows = attr_num(tag, "data-rows");
	free(tag);
	cr_assert_geq(rows, 8, "the process table has %ld rows", rows);
	char cell[256];
	cr_assert(table_cell(p.dom, s.reg, "registered", cell, sizeof cell),
	          "no row for the registered process %lld", (long long)s.reg);
	cr_assert_str_eq(cell, REG_NAME);
	table_cell(p.dom, s.reg, "name", cell, sizeof cell);
	cr_assert_str_eq(cell, "obs page reg");
	table_cell(p.dom, s.reg, "mailbox", cell, sizeof cell);
	cr_assert_eq(atoi(cell), UNREAD, "its mailbox shows \"%s\"", cell);
	table_cell(p.dom, s.reg, "status", cell, sizeof cell);
	cr_assert_str_eq(cell, "waiting");
	table_cell(p.dom, s.crasher, "supervisor", cell, sizeof cell);
	cr_assert_str_eq(cell, "obs_page_sup", "the crasher's supervisor shows as \"%s\"", cell);

	/* The tree: the supervisor, the restarted child marked with its count. */
	char *trees = element(p.dom, "id=\"trees\"");
	cr_assert(trees, "no trees section");
	char pat[64];
	snprintf(pat, sizeof pat, "data-pid=\"%lld\"", (long long)s.sup);
	tag = start_tag(trees, pat);
	cr_assert(tag && strstr(tag, "data-type=\"supervisor\""), "the supervisor is not in a tree: %s",
	          tag ? tag : "(absent)");
	free(tag);
	snprintf(pat, sizeof pat, "data-pid=\"%lld\"", (long long)s.crasher);
	tag = start_tag(trees, pat);
	cr_assert(tag, "the crasher %lld is not in the tree", (long long)s.crasher);
	cr_assert_eq(attr_num(tag, "data-restarts"), 1, "the crasher's restarts: %s", tag);
	cr_assert(strstr(tag, "is-recent"), "the crasher is not marked as restarted recently: %s", tag);
	free(tag);
	char *node = element(trees, pat);
	cr_assert(node && strstr(node, "crasher") && strstr(node, "\u21bb 1"),
	          "the crasher's line shows no id or count: %s", node ? node : "(absent)");
	free(node);
	cr_assert(strstr(trees, ">leaf<"), "the inner supervisor's child is not shown");
	free(trees);

	/* Every chart drew the samples. */
	long got;
	const char *c = chart_short_of(p.dom, 2, &got);
	cr_assert_null(c, "chart %s drew %ld samples", c, got);

	/* The detail opened by #pid=: links and monitors, and the kill button. */
	char *detail = element(p.dom, "id=\"detail\"");
	cr_assert(detail && attr_num(detail, "data-pid") == s.reg && !strstr(detail, " hidden"),
	          "the process's detail is not shown: %.300s", detail ? detail : "(absent)");
	snprintf(pat, sizeof pat, "href=\"#pid=%lld\"", (long long)s.partner);
	cr_assert(strstr(detail, pat), "its link to %lld is not shown", (long long)s.partner);
	snprintf(pat, sizeof pat, "href=\"#pid=%lld\"", (long long)s.watched);
	cr_assert(strstr(detail, pat), "its monitor of %lld is not shown", (long long)s.watched);
	cr_assert(strstr(detail, "id=\"kill\""), "no kill button although kill is allowed");
	free(detail);
	char *nodes = element(p.dom, "id=\"nodes\"");
	cr_assert(nodes && strstr(nodes, "<b>not distributed</b>"), "the nodes are not shown: %s",
	          nodes ? nodes : "(absent)");
	free(nodes);
	free(p.dom);

	/* /metrics, as Prometheus reads it. */
	static char buf[1 << 20];
	char *body;
	cr_assert_eq(http(s.port, "GET", "/metrics", buf, sizeof buf, &body), 200);
	cr_assert(strcasestr(buf, "Content-Type: text/plain"), "/metrics: %.200s", buf);
	cr_assert_gt(check_prometheus(body), 0, "no sample has a scheduler label");
	scene_stop();
	vm_assert_clean();
}

/* Under 32 bytes: kr_proc_info keeps that much of a name. */
#define EVIL "<b id=evil>bold</b>"

static void ping_peer(void *arg)
{
	VM_CHECK(kr_send_named_at(arg, "echo", 1, "hi", 2) == 0, "send"); /* a send connects */
}

Test(observer_page, names_are_text_kill_is_offered_only_when_allowed_peers_observers_are_links)
{
	if (!chromium())
		cr_skip_test("no chromium (scripts/deps.sh native installs it)");
	scene s;
	scene_start(&s, false, EVIL);
	static char self[64], peer_name[64];
	dist_name(self, sizeof self, "obs_page_a");
	dist_name(peer_name, sizeof peer_name, "obs_page_b");
	kr_node_config nc = { .name = self, .cookie = DIST_COOKIE };
	cr_assert_eq(kr_node_start(&nc), 0);
	dist_proc peer;
	dist_krnode(&peer, peer_name, DIST_COOKIE, "--observer");
	const char *seen = strstr(peer.text, "krnode observer ");
	cr_assert(seen, "%s", peer.text);
	char peer_url[64];
	snprintf(peer_url, sizeof peer_url, "href=\"http://127.0.0.1:%d/\"",
	         atoi(seen + strlen("krnode observer ")));
	kr_spawn(ping_peer, peer_name);
	cr_assert(VM_WAIT(kr_nodes(NULL, 0) == 1, 20000), "the peer did not connect");

	page p;
	browse(&p, s.url, 3000);
	assert_no_script_error(&p);
	cr_assert_null(strstr(p.dom, "id=\"evil\""), "a name was taken for markup");
	char cell[256];
	cr_assert(table_cell(p.dom, s.crasher, "name", cell, sizeof cell));
	cr_assert_str_eq(cell, "&lt;b id=evil&gt;bold&lt;/b&gt;");
	char *trees = element(p.dom, "id=\"trees\"");
	cr_assert(trees && strstr(trees, "&lt;b id=evil&gt;bold"), "the tree does not show the name");
	free(trees);
	char *detail = element(p.dom, "id=\"detail\"");
	cr_assert(detail && attr_num(detail, "data-pid") == s.reg, "the detail is not shown");
	cr_assert_null(strstr(detail, "id=\"kill\""), "a kill button although kill is not allowed");
	free(detail);
	char *nodes = element(p.dom, "id=\"nodes\"");
	cr_assert(nodes && strstr(nodes, self) && strstr(nodes, peer_name),
	          "the nodes panel does not name both nodes: %s", nodes ? nodes : "(absent)");
	cr_assert(strstr(nodes, peer_url), "no link %s to the peer's observer: %s", peer_url, nodes);
	free(nodes);
	free(p.dom);
	dist_kill(&peer);
	kr_node_stop();
	scene_stop();
}
