/* SPDX-License-Identifier: MIT */
/*
 * tpmd's one connection to the TPM, and what happens when there is none.
 *
 * A TPM that cannot be reached at start-up (no /dev/tpmrm0 yet, swtpm or
 * tpm2-abrmd not started, a wrong tcti) must not make the daemon exit:
 * under systemd's Restart=on-failure that is a restart loop that says the
 * same thing every few seconds, and clients would see "connection refused"
 * rather than why. So tpmd serves anyway, answers 503 with the reason, and
 * tries again after 1, 2, 4, ... seconds, at most TPMD_RETRY_MAX_S apart.
 * A failure is logged at error level when its reason is new, and at debug
 * while it repeats; the recovery is logged at notice level.
 *
 * A TPM that goes away while in use (a TCTI I/O error on a command, and no
 * answer to a probe either) is closed and retried the same way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "device/tpmd/tpmd.h"

struct tpmd_conn {
	struct event_base *base;
	struct event *timer;
	struct tpm *tpm; /* NULL while unavailable */
	char *tcti;
	char *endorsement_auth; /* secret */
	char *owner_auth;       /* secret */
	unsigned next_delay_s;  /* before the next timer attempt */
	struct timespec last_attempt;
	struct err reason; /* why tpm is NULL */
};

static void secret_free(char *s)
{
	if (s)
		OPENSSL_clear_free(s, strlen(s));
}

static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void schedule(struct tpmd_conn *c)
{
	struct timeval tv = {.tv_sec = c->next_delay_s};

	evtimer_add(c->timer, &tv);
	if (c->next_delay_s < TPMD_RETRY_MAX_S)
		c->next_delay_s =
		    c->next_delay_s * 2 > TPMD_RETRY_MAX_S ? TPMD_RETRY_MAX_S : c->next_delay_s * 2;
}

/* Record why the TPM is unavailable and schedule the next attempt. */
static void unavailable(struct tpmd_conn *c, const struct err *e, int r)
{
	const char *msg = err_msg(e, r);
	bool repeated = streq(c->reason.msg, msg);

	err_clear(&c->reason);
	err_set(&c->reason, r, "%s", msg);
	if (repeated)
		log_debug("the TPM is still unavailable: %s; next attempt in %us", msg,
			  c->next_delay_s);
	else
		log_err("the TPM is unavailable: %s; tpmd answers 503 until it is reachable, next "
			"attempt in %us",
			msg, c->next_delay_s);
	schedule(c);
}

/* Open the TPM and make sure the EK and SRK exist. 0 or a negative errno
 * (the TPM is then closed again). */
static int attempt(struct tpmd_conn *c)
{
	struct tpm_hierarchy_auth auth = {.endorsement = c->endorsement_auth,
					  .owner = c->owner_auth};
	_cleanup_buf_ struct buf ek = {0}, srk = {0};
	struct tpm *t = NULL;
	struct err e = {0};
	int r;

	clock_gettime(CLOCK_MONOTONIC, &c->last_attempt);
	evtimer_del(c->timer);
	buf_init(&ek, 4096);
	buf_init(&srk, 4096);
	r = tpm_open(c->tcti, &auth, &t, &e);
	if (r >= 0) {
		uint32_t flushed = 0;

		/* A tpmd killed mid-import left its objects loaded (tpm.md). */
		r = tpm_flush_leftovers(t, &flushed, &e);
		if (r >= 0 && flushed > 0)
			log_notice("flushed %u objects and sessions that a TPM client which did "
				   "not end cleanly left loaded",
				   (unsigned)flushed);
		if (r >= 0)
			r = tpm_ensure_ek(t, &ek, &e);
		if (r >= 0)
			r = tpm_ensure_srk(t, &srk, &e);
		if (r < 0) {
			tpm_close(t);
			t = NULL;
		}
	}
	if (r < 0) {
		unavailable(c, &e, r);
		return r;
	}
	c->tpm = t;
	c->next_delay_s = TPMD_RETRY_FIRST_S;
	if (err_isset(&c->reason))
		log_notice("the TPM is available again (tcti \"%s\")", c->tcti);
	else
		log_info("the TPM is open (tcti \"%s\"); EK 0x%08x and SRK 0x%08x are in place",
			 c->tcti, TPM_EK_HANDLE, TPM_SRK_HANDLE);
	err_clear(&c->reason);
	return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tpmd_conn *c = arg;

	(void)fd;
	(void)what;
	if (!c->tpm)
		(void)attempt(c);
}

int tpmd_conn_new(struct event_base *base, const char *tcti, const struct tpm_hierarchy_auth *auth,
		  struct tpmd_conn **ret)
{
	struct tpmd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->base = base;
	c->next_delay_s = TPMD_RETRY_FIRST_S;
	c->tcti = strdup(tcti ? tcti : "");
	c->endorsement_auth = strdup(auth && auth->endorsement ? auth->endorsement : "");
	c->owner_auth = strdup(auth && auth->owner ? auth->owner : "");
	c->timer = evtimer_new(base, on_timer, c);
	if (!c->tcti || !c->endorsement_auth || !c->owner_auth || !c->timer) {
		tpmd_conn_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void tpmd_conn_start(struct tpmd_conn *c)
{
	if (!c->tpm)
		(void)attempt(c);
}

void tpmd_conn_free(struct tpmd_conn *c)
{
	if (!c)
		return;
	if (c->timer)
		event_free(c->timer);
	tpm_close(c->tpm);
	free(c->tcti);
	secret_free(c->endorsement_auth);
	secret_free(c->owner_auth);
	free(c);
}

struct tpm *tpmd_conn_get(struct tpmd_conn *c, struct err *e)
{
	if (!c->tpm && ms_since(&c->last_attempt) >= TPMD_RETRY_ON_REQUEST_MS)
		(void)attempt(c);
	if (!c->tpm)
		err_set(e, c->reason.code, "%s", c->reason.msg);
	return c->tpm;
}

bool tpmd_conn_check_lost(struct tpmd_conn *c, int r, const struct err *e)
{
	uint32_t transient, sessions;
	struct err probe = {0};
	int p;

	if (!c->tpm || (r != -EIO && r != -ECONNREFUSED && r != -ECONNRESET && r != -EPIPE))
		return false;
	/* -EIO is also what the TPM's own failures (TPM_RC_FAILURE, ...) map
	 * to: only a TPM that does not answer at all is gone. */
	p = tpm_loaded_handles(c->tpm, &transient, &sessions, &probe);
	if (p >= 0 || (p != -EIO && p != -ECONNREFUSED && p != -ECONNRESET && p != -EPIPE))
		return false;
	tpm_close(c->tpm);
	c->tpm = NULL;
	c->next_delay_s = TPMD_RETRY_FIRST_S;
	/* The probe was the attempt: requests wait for the timer. */
	clock_gettime(CLOCK_MONOTONIC, &c->last_attempt);
	/* After a TCTI failure ESAPI refuses every further command ("called
	 * in the wrong order"), so the probe's own message says little; the
	 * command's says what happened. */
	log_debug("probing the TPM: %s", err_msg(&probe, p));
	{
		struct err lost = {0};

		err_set(&lost, r, "tpm.tcti \"%s\": lost the connection to the TPM (%s)", c->tcti,
			err_msg(e, r));
		unavailable(c, &lost, r);
	}
	return true;
}
