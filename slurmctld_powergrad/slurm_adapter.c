/*
 * The one file of PowerGrad that includes Slurm's internal headers. Written in C because
 * those headers are C (and change between releases): keep it small, keep locks short.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "slurm/slurm.h"
#include "src/common/list.h"
#include "src/common/log.h"
#include "src/common/slurm_accounting_storage.h"
#include "src/common/slurm_protocol_api.h"
#include "src/common/xmalloc.h"
#include "src/common/xstring.h"
#include "src/slurmctld/locks.h"
#include "src/slurmctld/slurmctld.h"
#include "src/slurmctld/slurmctld_plugstack.h"

#include "slurmctld_powergrad/slurm_adapter.h"

static const char env_key[] = "POWERGRAD=";
static const char env_key_prefixed[] = "SPANK_POWERGRAD=";

void pg_adapter_log_info(const char *msg) { info("powergrad: %s", msg); }
void pg_adapter_log_error(const char *msg) { error("powergrad: %s", msg); }
void pg_adapter_log_debug(const char *msg) { debug("powergrad: %s", msg); }

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
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

/* ------------------------------------------------------------------ job hooks */

static pg_comment_fn hook_fn;
static void *hook_arg;
static void (*prev_begin)(job_record_t *job_ptr);
static void (*prev_fini)(job_record_t *job_ptr);
static int hooks_installed;

static void run_hook(job_record_t *job_ptr, int running)
{
	pg_job_view_t v;

	if (!hook_fn || !job_ptr)
		return;
	borrow_view(job_ptr, &v);
	if (!v.mode)
		return;
	v.running = running;
	store_comment(job_ptr, hook_fn(&v, hook_arg));
}

static void on_job_begin(job_record_t *job_ptr)
{
	run_hook(job_ptr, 1);
	if (prev_begin)
		prev_begin(job_ptr);
}

/*
 * With slurmdbd, slurmctld sends a job's start to the database out of band: a thread of the
 * accounting_storage/slurmdbd plugin sends the starts of jobs that have no db_index yet
 * every 5 s. A job that ends within that window has its completion queued first, and
 * slurmdbd then creates the job's row from the completion message, which carries no job
 * name: sacct shows JobName "allocation" (and no work dir, submit line...) until the next
 * pass of that thread sends the start. PowerGrad's reports read those rows right after the
 * job ends, so for a power-aware job that ends before its start was sent, queue the start
 * now, ahead of the completion, on the same ordered agent queue. This is what slurmctld
 * itself does before resizing a job. The job is finished here, so the plugin only queues
 * the message (no wait for slurmdbd under the lock); db_index becomes NO_VAL64 so the
 * thread does not send it again.
 */
static void send_missing_db_start(job_record_t *job_ptr)
{
	if (job_ptr->db_index || !slurm_with_slurmdbd() || !IS_JOB_FINISHED(job_ptr))
		return;
	if (jobacct_storage_g_job_start(acct_db_conn, job_ptr) != SLURM_SUCCESS)
		error("powergrad: could not queue the accounting start of %pJ", job_ptr);
}

static void on_job_fini(job_record_t *job_ptr)
{
	run_hook(job_ptr, 0);
	if (job_ptr && job_mode(job_ptr))
		send_missing_db_start(job_ptr);
	if (prev_fini)
		prev_fini(job_ptr);
}

int pg_adapter_install_job_hooks(pg_comment_fn fn, void *arg)
{
	/* Plugins are loaded and unloaded by slurmctld's main thread: no race here. */
	hook_fn = fn;
	hook_arg = arg;
	if (!hooks_installed) {
		prev_begin = nonstop_ops.job_begin;
		prev_fini = nonstop_ops.job_fini;
		nonstop_ops.job_begin = on_job_begin;
		nonstop_ops.job_fini = on_job_fini;
		hooks_installed = 1;
	}
	return 0;
}

void pg_adapter_remove_job_hooks(void)
{
	slurmctld_lock_t job_write_lock = { .job = WRITE_LOCK };

	if (!hooks_installed)
		return;
	/* Hooks run under the job write lock: taking it means none is running now. */
	lock_slurmctld(job_write_lock);
	if (nonstop_ops.job_begin == on_job_begin)
		nonstop_ops.job_begin = prev_begin;
	if (nonstop_ops.job_fini == on_job_fini)
		nonstop_ops.job_fini = prev_fini;
	hook_fn = NULL;
	hooks_installed = 0;
	unlock_slurmctld(job_write_lock);
}

/* ------------------------------------------------------------------ periodic access */

int pg_adapter_snapshot_power_aware_jobs(pg_job_view_t **out, size_t *count)
{
	slurmctld_lock_t job_read_lock = { .job = READ_LOCK };
	ListIterator it;
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
	ListIterator it;
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
		if (!job_ptr)
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
