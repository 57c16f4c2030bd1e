/*
 * The one file of PowerGrad that includes Slurm's internal headers, and the one place where
 * Slurm versions differ (#if on SLURM_VERSION_NUMBER, nowhere else). Written in C because
 * those headers are C: keep it small, keep locks short.
 *
 * It also holds the PrEp plugin's entry points (prep_p_*): their arguments are Slurm's
 * internal types. The API of PrEp plugins is the same in 22.05, 24.11 and 26.05 (checked in
 * src/common/prep.h of 22.05 and src/interfaces/prep.h of 23.02 and later).
 *
 * Supported: 22.05, and 23.02 up to 26.05 (configure refuses others). Differences handled:
 *   23.02: prep.h and accounting_storage.h moved from src/common/ to src/interfaces/;
 *          list_itr_t replaces ListIterator (gone in 24.05).
 *   24.11: whether slurmctld queued a job's start to the database is IS_JOB_IN_DB()
 *          (db_flags' SLURMDB_JOB_FLAG_START_R), no longer a nonzero db_index; since 25.11
 *          db_index is the job's SLUID, set when the job is created (job_record_set_sluid),
 *          so in 26.05 it would say "sent" for every job.
 * Unchanged from 24.11 to 26.05 (read in the 26.05 branch's source): the job_record_t
 * fields read here (src/common/job_record.h), slurmctld_lock_t and lock_slurmctld()
 * (locks.h), job_list, last_job_update, find_job_record() and acct_db_conn (slurmctld.h),
 * next_node(), node_record_table_ptr and node_record_count (node_conf.h), slurm_conf's
 * slurm_conf, state_save_location and slurm_user_id (slurm.h), the list API (list.h),
 * jobacct_storage_g_job_start()/_complete() (interfaces/accounting_storage.h) and the PrEp
 * entry points (interfaces/prep.c). In 26.05 running_in_slurmctld(), info() and debug() are
 * macros (run_in_daemon(), log_var()); the same calls compile.
 *
 * Within a release series Slurm changes internal structs too: 26.05.5's job_record_t is 8
 * bytes longer than the 26.05 branch's (26.05.4pre) from offset 152 on (seen in 26.05.5's
 * binaries). A plugin built against another micro version's headers (configure warns)
 * would misread every job, so before using any job record the plugin checks that
 * slurmctld's job records have the size and magic its headers give (job_layout_ok()); if
 * not, it logs so once and leaves job records alone. The check catches a changed size, not
 * a reordering within the same size: build against the running version's own source.
 *
 * slurmd loads PrEp plugins too (for its prolog/epilog), and slurmd has no job list, no
 * controller locks and no accounting connection. The symbols only slurmctld defines are
 * therefore weak references: in slurmd they are NULL, the plugin still loads (also with
 * -z now), and nothing here touches them unless running inside slurmctld.
 */
/* This file keeps the style of Slurm's sources, whose internal headers it uses: */
/* clang-format off */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "slurm/slurm.h"
#include "slurm/slurm_errno.h"
#include "src/common/list.h"
#include "src/common/log.h"
#include "src/common/run_in_daemon.h"
#include "src/common/slurm_protocol_api.h"
#include "src/common/xmalloc.h"
#include "src/common/xstring.h"
#include "src/slurmctld/locks.h"
#include "src/slurmctld/slurmctld.h"

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 2, 0)
#include "src/interfaces/accounting_storage.h"
#include "src/interfaces/prep.h"
typedef list_itr_t *pg_list_iter_t;
#else
#include "src/common/prep.h"
#include "src/common/slurm_accounting_storage.h"
typedef ListIterator pg_list_iter_t;
#endif

#include "slurmctld_powergrad/slurm_adapter.h"

/* Defined by slurmctld only (see above). */
#pragma weak job_list
#pragma weak last_job_update
#pragma weak acct_db_conn
#pragma weak lock_slurmctld
#pragma weak unlock_slurmctld
#pragma weak find_job_record
#pragma weak validate_operator

/* 1: slurmctld's job records match these headers; -1: they do not; 0: not checked yet. */
static int job_layout = 0;

static const char env_key[] = "POWERGRAD=";
static const char env_key_prefixed[] = "SPANK_POWERGRAD=";

void pg_adapter_log_info(const char *msg) { info("powergrad: %s", msg); }
void pg_adapter_log_error(const char *msg) { error("powergrad: %s", msg); }
void pg_adapter_log_debug(const char *msg) { debug("powergrad: %s", msg); }

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/*
 * Whether this slurmctld's job records are laid out as the headers built against say:
 * slurmctld allocates each with xmalloc(sizeof(job_record_t)), whose size xsize() gives,
 * and stamps it with JOB_MAGIC. Checked on the first record seen (a job lock is held), then
 * remembered. Without it, a plugin built against another micro version's headers reads
 * wrong fields and crashes slurmctld (seen with 26.05.3's headers, the same as the 26.05
 * branch's, on 26.05.5).
 */
static bool job_layout_ok(job_record_t *job_ptr)
{
	int state = __atomic_load_n(&job_layout, __ATOMIC_RELAXED);
	size_t size;

	if (state)
		return state > 0;
	size = xsize(job_ptr);
	if (job_ptr->magic != JOB_MAGIC || size != sizeof(job_record_t)) {
		if (__atomic_exchange_n(&job_layout, -1, __ATOMIC_RELAXED) != -1)
			error("powergrad: this slurmctld's job records do not match the Slurm %s headers PowerGrad was built against (a record of %zu bytes with magic 0x%x; the headers say %zu bytes and 0x%x): PowerGrad leaves job records alone (no AdminComment records); rebuild it against this Slurm version's own source",
			      SLURM_VERSION_STRING, size, job_ptr->magic,
			      sizeof(job_record_t), JOB_MAGIC);
		return false;
	}
	__atomic_store_n(&job_layout, 1, __ATOMIC_RELAXED);
	return true;
}

/*
 * Whether slurmctld has queued the job's start to the accounting database (see the notes on
 * 24.11 and 25.11 at the top).
 */
static bool db_start_sent(const job_record_t *job_ptr)
{
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(24, 11, 0)
	return IS_JOB_IN_DB(job_ptr);
#else
	return job_ptr->db_index != 0;
#endif
}

/* Points into the job's env: the value of POWERGRAD, or NULL. */
static const char *job_mode(const job_record_t *job_ptr)
{
	for (uint32_t i = 0; i < job_ptr->spank_job_env_size; i++) {
		const char *e = job_ptr->spank_job_env[i];
		if (!e)
			continue;
		if (!strncmp(e, env_key, sizeof(env_key) - 1))
			return e + sizeof(env_key) - 1;
		if (!strncmp(e, env_key_prefixed, sizeof(env_key_prefixed) - 1))
			return e + sizeof(env_key_prefixed) - 1;
	}
	return NULL;
}

/* Fills a view whose strings point into the job record (valid while the lock is held). */
static void borrow_view(job_record_t *job_ptr, pg_job_view_t *v)
{
	v->job_id = job_ptr->job_id;
	v->mode = (char *) job_mode(job_ptr);
	v->nodes = job_ptr->nodes;
	v->admin_comment = job_ptr->admin_comment;
	v->start_time = job_ptr->start_time;
	v->running = IS_JOB_RUNNING(job_ptr) ? 1 : 0;
}

static void store_comment(job_record_t *job_ptr, char *comment)
{
	if (!comment)
		return;
	xfree(job_ptr->admin_comment);
	job_ptr->admin_comment = xstrdup(comment);
	free(comment);
	last_job_update = time(NULL);
}

/* ------------------------------------------------------------------ PrEp hooks */

static pg_comment_fn hook_fn;
static void *hook_arg;
static int want_start_hook;

int pg_adapter_in_slurmctld(void)
{
	return running_in_slurmctld() && &job_list && lock_slurmctld && find_job_record;
}

/* Runs fn on a power-aware job (job write lock held); 1 if its AdminComment changed. */
static int run_hook(job_record_t *job_ptr, int running)
{
	pg_job_view_t v;
	char *c;

	if (!hook_fn || !job_ptr || !job_layout_ok(job_ptr))
		return 0;
	borrow_view(job_ptr, &v);
	if (!v.mode)
		return 0;
	v.running = running;
	if (!(c = hook_fn(&v, hook_arg)))
		return 0;
	store_comment(job_ptr, c);
	return 1;
}

/*
 * The job's start to slurmdbd, if slurmctld has not sent it yet. With slurmdbd, slurmctld
 * sends a job's start out of band: a thread of the accounting_storage/slurmdbd plugin sends
 * the starts of jobs that have no db_index yet every 5 s (22.05; since 24.11 slurmctld queues
 * the start when it allocates the nodes, so this is a fallback). A job that ends within that window
 * has its completion queued first, and slurmdbd then creates the job's row from the
 * completion message, which carries no job name: sacct shows JobName "allocation" (and no
 * work dir, submit line...) until the thread's next pass. PowerGrad's reports read those
 * rows right after the job ends, so the start is queued now, on the same ordered agent queue
 * (the row is found by job id and submit time, so no second row is made). The job is
 * finished here, so this only queues the message (no wait for slurmdbd under the lock);
 * slurmctld then marks the start as sent, so it is not sent again.
 */
static void send_missing_db_start(job_record_t *job_ptr)
{
	if (db_start_sent(job_ptr) || !IS_JOB_FINISHED(job_ptr))
		return;
	if (jobacct_storage_g_job_start(acct_db_conn, job_ptr) != SLURM_SUCCESS)
		error("powergrad: could not queue the accounting start of %pJ", job_ptr);
}

/*
 * slurmctld calls the PrEp epilog from deallocate_nodes(), after job_completion_logger()
 * queued the job's completion record to the database (22.05, 24.11 and 26.05 alike), so an
 * AdminComment set here would miss that record. When the final record changed the comment,
 * the completion is queued once more with it: slurmdbd updates the job's row (time_end,
 * state, exit code and admin_comment; the same values but the comment). Queued only, on the
 * ordered agent queue: nothing waits for slurmdbd under the job lock.
 */
static void resend_completion(job_record_t *job_ptr)
{
	if (!slurm_with_slurmdbd() || !acct_db_conn)
		return;
	send_missing_db_start(job_ptr);
	if (jobacct_storage_g_job_complete(acct_db_conn, job_ptr) != SLURM_SUCCESS)
		error("powergrad: could not queue the accounting record of %pJ", job_ptr);
}

int pg_adapter_set_job_hooks(pg_comment_fn fn, void *arg, int start_hook)
{
	/* Plugins are loaded and unloaded by slurmctld's main thread: no race here. */
	hook_fn = fn;
	hook_arg = arg;
	want_start_hook = start_hook ? 1 : 0;
	return 0;
}

void pg_adapter_clear_job_hooks(void)
{
	slurmctld_lock_t job_write_lock = { .job = WRITE_LOCK };

	if (!hook_fn || !pg_adapter_in_slurmctld())
		return;
	/* Hooks run under the job write lock: taking it means none is running now. */
	lock_slurmctld(job_write_lock);
	hook_fn = NULL;
	hook_arg = NULL;
	unlock_slurmctld(job_write_lock);
}

extern void prep_p_register_callbacks(prep_callbacks_t *callbacks)
{
	/* PowerGrad's hooks finish at once: no asynchronous completion to report. */
}

/* slurmd's prolog and epilog: nothing to do (the SPANK plugin works on the nodes). */
extern int prep_p_prolog(job_env_t *job_env, slurm_cred_t *cred)
{
	return SLURM_SUCCESS;
}

extern int prep_p_epilog(job_env_t *job_env, slurm_cred_t *cred)
{
	return SLURM_SUCCESS;
}

/* Job write lock held (prolog_slurmctld()); only when declared required below. */
extern int prep_p_prolog_slurmctld(job_record_t *job_ptr, bool *async)
{
	*async = false;
	run_hook(job_ptr, 1);
	return SLURM_SUCCESS;
}

/* Job write lock held (epilog_slurmctld(), called for every job that leaves its nodes). */
extern int prep_p_epilog_slurmctld(job_record_t *job_ptr, bool *async)
{
	*async = false;
	if (!job_ptr || !job_layout_ok(job_ptr))
		return SLURM_SUCCESS;
	if (run_hook(job_ptr, 0))
		resend_completion(job_ptr);
	else if (!db_start_sent(job_ptr) && job_mode(job_ptr) && slurm_with_slurmdbd() &&
		 acct_db_conn)
		send_missing_db_start(job_ptr);
	return SLURM_SUCCESS;
}

/*
 * The epilog hook runs for every job anyway; the start hook only if a plugin declares it
 * required, which sends every job through CONFIGURING and a detached thread of slurmctld
 * (see prolog_slurmctld()). PowerGrad's controller thread writes the record of a running job
 * within one control period, so the start hook is off unless asked for.
 */
extern void prep_p_required(prep_call_type_t type, bool *required)
{
	*required = false;
	if (!running_in_slurmctld())
		return;
	if (type == PREP_EPILOG_SLURMCTLD)
		*required = true;
	else if (type == PREP_PROLOG_SLURMCTLD && want_start_hook)
		*required = true;
}

/* ------------------------------------------------------------------ periodic access */

int pg_adapter_snapshot_power_aware_jobs(pg_job_view_t **out, size_t *count)
{
	slurmctld_lock_t job_read_lock = { .job = READ_LOCK };
	pg_list_iter_t it;
	job_record_t *job_ptr;
	size_t n = 0, cap = 0;
	pg_job_view_t *views = NULL;
	int rc = 0;

	*out = NULL;
	*count = 0;
	lock_slurmctld(job_read_lock);
	if (!job_list) {
		unlock_slurmctld(job_read_lock);
		return -1;
	}
	it = list_iterator_create(job_list);
	while ((job_ptr = list_next(it))) {
		const char *mode;
		if (!job_layout_ok(job_ptr)) {
			rc = -1;
			break;
		}
		if (!IS_JOB_RUNNING(job_ptr))
			continue;
		if (!(mode = job_mode(job_ptr)))
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			pg_job_view_t *nv = realloc(views, ncap * sizeof(*nv));
			if (!nv) {
				rc = -1;
				break;
			}
			views = nv;
			cap = ncap;
		}
		views[n].job_id = job_ptr->job_id;
		views[n].mode = dup_or_null(mode);
		views[n].nodes = dup_or_null(job_ptr->nodes);
		views[n].admin_comment = dup_or_null(job_ptr->admin_comment);
		views[n].start_time = job_ptr->start_time;
		views[n].running = 1;
		n++;
	}
	list_iterator_destroy(it);
	unlock_slurmctld(job_read_lock);
	if (rc) {
		pg_adapter_free_views(views, n);
		return rc;
	}
	*out = views;
	*count = n;
	return 0;
}

void pg_adapter_free_views(pg_job_view_t *views, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(views[i].mode);
		free(views[i].nodes);
		free(views[i].admin_comment);
	}
	free(views);
}

int pg_adapter_known_job_ids(uint32_t **ids_out, unsigned char **running_out, size_t *count)
{
	slurmctld_lock_t job_read_lock = { .job = READ_LOCK };
	pg_list_iter_t it;
	job_record_t *job_ptr;
	size_t n = 0, cap;
	uint32_t *ids;
	unsigned char *running;

	*ids_out = NULL;
	if (running_out)
		*running_out = NULL;
	*count = 0;
	lock_slurmctld(job_read_lock);
	if (!job_list) {
		unlock_slurmctld(job_read_lock);
		return -1;
	}
	cap = (size_t) list_count(job_list);
	ids = malloc((cap ? cap : 1) * sizeof(*ids));
	running = malloc(cap ? cap : 1);
	if (!ids || !running) {
		unlock_slurmctld(job_read_lock);
		free(ids);
		free(running);
		return -1;
	}
	it = list_iterator_create(job_list);
	while ((job_ptr = list_next(it)) && n < cap) {
		if (!job_layout_ok(job_ptr)) {
			list_iterator_destroy(it);
			unlock_slurmctld(job_read_lock);
			free(ids);
			free(running);
			return -1;
		}
		ids[n] = job_ptr->job_id;
		running[n] = (IS_JOB_RUNNING(job_ptr) || IS_JOB_SUSPENDED(job_ptr)) ? 1 : 0;
		n++;
	}
	list_iterator_destroy(it);
	unlock_slurmctld(job_read_lock);
	*ids_out = ids;
	if (running_out)
		*running_out = running;
	else
		free(running);
	*count = n;
	return 0;
}

int pg_adapter_job_owners(uint32_t **ids_out, uint32_t **uids_out, size_t *count)
{
	slurmctld_lock_t job_read_lock = { .job = READ_LOCK };
	pg_list_iter_t it;
	job_record_t *job_ptr;
	size_t n = 0, cap;
	uint32_t *ids, *uids;

	*ids_out = NULL;
	*uids_out = NULL;
	*count = 0;
	lock_slurmctld(job_read_lock);
	if (!job_list) {
		unlock_slurmctld(job_read_lock);
		return -1;
	}
	cap = (size_t) list_count(job_list);
	ids = malloc((cap ? cap : 1) * sizeof(*ids));
	uids = malloc((cap ? cap : 1) * sizeof(*uids));
	if (!ids || !uids) {
		unlock_slurmctld(job_read_lock);
		free(ids);
		free(uids);
		return -1;
	}
	it = list_iterator_create(job_list);
	while ((job_ptr = list_next(it)) && n < cap) {
		ids[n] = job_ptr->job_id;
		uids[n] = job_ptr->user_id;
		n++;
	}
	list_iterator_destroy(it);
	unlock_slurmctld(job_read_lock);
	*ids_out = ids;
	*uids_out = uids;
	*count = n;
	return 0;
}

size_t pg_adapter_apply_comments(const uint32_t *ids, size_t count, pg_comment_fn fn,
				 void *arg)
{
	slurmctld_lock_t job_write_lock = { .job = WRITE_LOCK };
	size_t updated = 0;

	lock_slurmctld(job_write_lock);
	for (size_t i = 0; i < count; i++) {
		job_record_t *job_ptr = find_job_record(ids[i]);
		pg_job_view_t v;
		char *c;
		if (!job_ptr || !job_layout_ok(job_ptr))
			continue;
		borrow_view(job_ptr, &v);
		if (!v.mode)
			continue;
		if ((c = fn(&v, arg))) {
			store_comment(job_ptr, c);
			updated++;
		}
	}
	unlock_slurmctld(job_write_lock);
	return updated;
}

/* ------------------------------------------------------------------ configuration */

char *pg_adapter_slurm_conf_path(void)
{
	slurmctld_lock_t conf_read_lock = { .conf = READ_LOCK };
	char *path;

	lock_slurmctld(conf_read_lock);
	path = dup_or_null(slurm_conf.slurm_conf);
	unlock_slurmctld(conf_read_lock);
	return path;
}

char *pg_adapter_state_save_location(void)
{
	slurmctld_lock_t conf_read_lock = { .conf = READ_LOCK };
	char *path;

	lock_slurmctld(conf_read_lock);
	path = dup_or_null(slurm_conf.state_save_location);
	unlock_slurmctld(conf_read_lock);
	return path;
}

uint32_t pg_adapter_slurm_user_uid(void)
{
	slurmctld_lock_t conf_read_lock = { .conf = READ_LOCK };
	uint32_t uid;

	lock_slurmctld(conf_read_lock);
	uid = slurm_conf.slurm_user_id;
	unlock_slurmctld(conf_read_lock);
	return uid;
}

int pg_adapter_private_jobs(void)
{
	slurmctld_lock_t conf_read_lock = { .conf = READ_LOCK };
	int private_jobs;

	lock_slurmctld(conf_read_lock);
	private_jobs = (slurm_conf.private_data & PRIVATE_DATA_JOBS) ? 1 : 0;
	unlock_slurmctld(conf_read_lock);
	return private_jobs;
}

long long pg_adapter_conf_read_at(void)
{
	slurmctld_lock_t conf_read_lock = { .conf = READ_LOCK };
	long long at;

	lock_slurmctld(conf_read_lock);
	at = (long long) slurm_conf.last_update;
	unlock_slurmctld(conf_read_lock);
	return at;
}

int pg_adapter_sees_all_jobs(uint32_t uid)
{
	uint32_t slurm_user = pg_adapter_slurm_user_uid();

	if (uid == 0 || uid == slurm_user)
		return 1;
	/*
	 * Operators and admins of Slurm's accounting see private data too. validate_operator
	 * takes the accounting manager's locks itself; no slurmctld lock may be held here.
	 */
	if (validate_operator && validate_operator((uid_t) uid))
		return 1;
	return 0;
}

int pg_adapter_node_names(char ***out, size_t *count)
{
	slurmctld_lock_t node_read_lock = { .node = READ_LOCK };
	node_record_t *node_ptr;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	*out = NULL;
	*count = 0;
	lock_slurmctld(node_read_lock);
	if (!node_record_table_ptr || node_record_count <= 0) {
		unlock_slurmctld(node_read_lock);
		return -1;
	}
	names = calloc((size_t) node_record_count, sizeof(*names));
	if (!names) {
		unlock_slurmctld(node_read_lock);
		return -1;
	}
	for (int i = 0; (node_ptr = next_node(&i)); i++) {
		if ((size_t) n >= (size_t) node_record_count)
			break;
		if (!node_ptr->name)
			continue;
		if (!(names[n] = strdup(node_ptr->name))) {
			rc = -1;
			break;
		}
		n++;
	}
	unlock_slurmctld(node_read_lock);
	if (rc) {
		pg_adapter_free_names(names, n);
		return rc;
	}
	*out = names;
	*count = n;
	return 0;
}

void pg_adapter_free_names(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int pg_adapter_controller_ready(void)
{
	slurmctld_lock_t read_lock = { .job = READ_LOCK, .node = READ_LOCK };
	int ready;

	if (!pg_adapter_in_slurmctld())
		return 0;
	lock_slurmctld(read_lock);
	ready = job_list && node_record_table_ptr && node_record_count > 0;
	unlock_slurmctld(read_lock);
	return ready;
}
