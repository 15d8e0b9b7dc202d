"""Every tunable of the web process and the workers, each with the reason for its value.

Modules read these as `tunables.NAME` at call time, so a test may change one with
`monkeypatch.setattr(tunables, "NAME", value)`.
"""

from datetime import timedelta

# --- RQ jobs -------------------------------------------------------------------------------
QUEUE_NAME = "opsbot"
JOB_TIMEOUT = 60  # seconds; a drain works for DRAIN_SECONDS, a delivery waits at most ~10 s
RESULT_TTL = 3600  # finished jobs' results: an hour is enough to look at what just ran
FAILURE_TTL = 7 * 24 * 3600  # failed jobs stay visible (`opsbot jobs failed`) for a week
RETRY_WAITS = (2, 10, 30, 120, 600)  # seconds before retry n: five retries over ~13 minutes

# --- Drains (bot.worker.drains) --------------------------------------------------------------
# One RQ job costs a worker ~4 ms (about 20 Redis round trips), so drains take work in
# batches: one transaction per step, one wait for SQLite's writer lock.
DRAIN_SECONDS = 1.0  # a drain job then makes way for the other jobs in the queue
WAITING_TTL = 10  # seconds; a waiting drain lost with Redis blocks new requests no longer
# A drain job lets work gather this long before its first step, and after a step that found
# less than a full batch before its next one (holding the waiting key: requests meanwhile
# enqueue no other drain). Each step has a fixed cost (its claims, its transaction) and each
# job one of its own (RQ's handling): under a steady flow, steps as fast as possible carried
# 1-3 events each, and most drain jobs ran one step.
DRAIN_GATHER = 0.02  # seconds
EVENT_BATCH = 25  # inbound events applied per step
OUTBOX_BATCH = 50  # outbox rows claimed (and sent after the commit) per step
# Rows a worker sends at the same time, one lane per customer or task (in order within it).
# Slack, Telegram and the Graph API answer in 0.1-0.3 s from afar: with 8, two workers kept
# up with 160 cards/s when each call took 0.1 s, not with 300 (e2e_bench --api-delay 100). A
# lane holds a database connection only for the milliseconds it reads a customer's message
# and records it sent, never during a call.
SEND_LANES = 32
TIMER_BATCH = 500  # tasks whose timers are scheduled per step (three Redis round trips)
DUE_TIMER_BATCH = 100  # due timers fired per step, in its transaction
TIMER_LEASE = 60  # seconds a claimed timer waits before another drain may fire it

# --- Event processing (bot.usecases.messages) ------------------------------------------------
CONFLICT_RETRIES = 3  # a task changed at the same moment (or a deadlock): redo the event

# --- Late arrivals (bot.usecases.lateness) -------------------------------------------------
# Meta redelivers for days after an outage: the backlog comes in within a minute or two, each
# task already late. The first late task of a team opens a window; the late tasks of that team
# that arrive during it are listed on ONE summary card to the supervisor when it ends.
LATE_SUMMARY = timedelta(minutes=2)

# --- Delivery (bot.usecases.delivery) -------------------------------------------------------
BACKOFF = (0.25, 0.5, 1.0)  # seconds between quick retries inside one job run; also
# between tries to record a WhatsApp send once accepted (store.db.write_through)
MAX_WAIT = 5.0  # a Retry-After up to this is waited out in the job; longer is rescheduled
MAX_RATE_WAITS = 3  # Retry-After waits in one job run before it is rescheduled

# --- Outgoing webhooks (bot.usecases.webhooks_out) -------------------------------------------
WEBHOOK_TIMEOUT = 10.0  # seconds per request (connect, read): a receiver should answer at once
WEBHOOK_RETRY_WAITS = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)  # seconds before retry
# n: a receiver that is briefly down gets its events within seconds, a long outage is not
# hammered; then one retry every WEBHOOK_RETRY_EVERY until WEBHOOK_GIVE_UP_AFTER in all
WEBHOOK_RETRY_EVERY = 28800  # seconds (8 h)
WEBHOOK_GIVE_UP_AFTER = timedelta(days=3)  # a CRM down longer than a long weekend gets `failed`
WEBHOOK_JITTER = 0.2  # each wait is +-20 %: receivers coming back are not hit all at once
WEBHOOK_BATCH = 200  # queue heads claimed per round (each queue is one endpoint and task)
WEBHOOK_FOLLOW = 800  # deliveries queued behind those heads, sent in the same round
WEBHOOK_THREADS = 6  # requests in flight per worker: more threads only fight over the GIL
WEBHOOK_SECONDS = 5.0  # a delivery job then makes way for the other jobs (asking for another)
WEBHOOK_ANSWER_HEAD = 200  # characters of a receiver's answer kept per attempt
WEBHOOK_CLAIM_GRACE = timedelta(seconds=60)  # a round can hold a claim this long (sequential
# sends of one queue); older claims of a job that is gone are freed by the sweeper

# --- Sweeper (bot.worker.sweeper) -----------------------------------------------------------
SWEEP_EVERY = 5.0  # seconds between sweeps of each worker
GRACE = timedelta(seconds=5)  # a claim this young may belong to a job not yet enqueued
TIMERS_CHECK_EVERY = 600  # seconds between looks for timers Redis lost (evicted keys)
TIMERS_RESTORE_BATCH = 500  # tasks per Redis look when restoring lost timers

# --- Worker process (bot.worker.process) ----------------------------------------------------
WORKER_TTL = 30  # seconds; RQ blocks on the queue for worker_ttl - 15 between maintenance
JOB_MONITORING_INTERVAL = 5
MAINTENANCE_INTERVAL = 30  # RQ's registry clean-up (abandoned and expired jobs)
ALIVE_TTL = 5  # seconds; the sweeper requeues the jobs of a worker whose key expired
HEARTBEAT_EVERY = 1.0  # seconds between refreshes of the worker's alive key
SCHEDULER_TICK = 0.25  # seconds between looks at the schedule (RQ: 1 s)
SCHEDULER_MAX_BATCHES = 50  # per tick: 50 x 1,000 due jobs

# --- Web process ------------------------------------------------------------------------
WHATSAPP_MAX_BODY = 3 * 1024 * 1024  # Meta's bodies are a few KB; a batch stays far below
INTAKE_MAX_BATCH = 2000  # webhook bodies committed in one intake transaction
ANSWER_IN_ACK_WITHIN = 2.0  # seconds; Slack wants the ack within 3 s, else it retries
SLACK_MAX_BODY = 1024 * 1024  # commands, button payloads (a card's blocks) and events: a few KB
TELEGRAM_MAX_BODY = 1024 * 1024  # one update, a few KB; texts are at most 4,096 characters
READY_PROBE_TIMEOUT = 2.0  # seconds per /readyz ping; a load balancer probes every few seconds
MEDIA_LINK_TTL = timedelta(days=7)  # a card's media link works this long: a task is usually
# handled within days (Meta keeps inbound media ~30 days), and a forwarded link stops working

# --- `opsbot run` (bot.core.supervisor) ------------------------------------------------------
STOP_TIMEOUT = 30.0  # seconds a child gets to finish its current job after SIGTERM

# --- Intake under a slow database (bot.webhooks.intake) --------------------------------------
# PostgreSQL's connect, statement and answer timeouts are in store/db.py (store/ may not import
# this module).
INTAKE_STORE_TIMEOUT = 5.0  # seconds a webhook waits for its commit before it gets 503: Meta
# redelivers on a 5xx, and a commit that takes longer means the database is in trouble
INTAKE_MAX_WAITING = 2000  # requests queued while the writer is stuck (its commit is older
# than INTAKE_STORE_TIMEOUT); more get 503 at once instead of holding their bodies in memory
# until they time out

# --- Redis clients (bot.core.bootstrap) -------------------------------------------------------
# redis-py 8 waits 5 s to connect and 5 s for each answer unless told otherwise.
REDIS_CONNECT_TIMEOUT = 1.0  # seconds; Redis is on the same network: a connect takes ms
REDIS_SOCKET_TIMEOUT = 2.0  # seconds per answer in the web process; its commands are O(1) and
# answer in ms, and Slack wants its ack within 3 s, so a hanging Redis must fail before that
WORKER_REDIS_MARGIN = 10.0  # seconds a worker's client waits for an answer beyond RQ's blocking
# wait for a job (WORKER_TTL - 15 s), which answers only that late when the queue is empty
REDIS_HEALTH_CHECK_INTERVAL = 30  # seconds idle after which a connection is PINGed before use,
# so that one closed by Redis' `timeout` or a load balancer fails there, not on a command

# --- Meta's webhook-level errors (bot.usecases.platform) --------------------------------------
PLATFORM_ERROR_CARD_EVERY = timedelta(hours=1)  # admins hear of an error code at most this
# often: a rate limit (130429) is reported on every webhook while it lasts

# --- The audit trail (bot.usecases.audit) ---------------------------------------------------
AUDIT_ANCHOR_EVERY = timedelta(minutes=10)  # the last events of a chain can be deleted unseen
# until an anchor covers them: ten minutes bounds that window for one cheap row
AUDIT_VERIFY_EVERY = timedelta(days=1)  # a full walk reads every event: daily finds tampering
# within a day at the cost of one pass over the table

# --- The integration API (bot.api) ----------------------------------------------------------
API_RATE_LIMIT = 600  # requests per key per window: 10 a second is far above what a CRM sync
# needs, and low enough that a runaway client cannot starve agents and webhooks
API_RATE_WINDOW = 60  # seconds; a fixed window: one INCR and one EXPIRE per request
API_KEY_USED_EVERY = timedelta(minutes=1)  # `apikeys list` shows when a key was last used, to
# the minute: one write per key and minute, not one per request (SQLite has one writer)
API_PAGE_DEFAULT = 50  # items per page when `limit` is not given
API_PAGE_MAX = 200  # items per page at most: one page is one short query
EVENTS_GAP_GRACE = timedelta(seconds=5)  # on PostgreSQL, a hole in event ids younger than this
# may still be filled by a transaction in flight: the events stream stops before it

# --- Console (bot.console) -------------------------------------------------------------------
CONSOLE_IDLE = timedelta(minutes=30)  # a session left alone this long signs out (shared PCs)
CONSOLE_ABSOLUTE = timedelta(hours=12)  # a working day: sign in again every morning
CONSOLE_STEP_UP_FOR = timedelta(minutes=5)  # a re-entered code covers one dangerous task
CONSOLE_SIGN_IN_LIMIT = 20  # sign-in attempts per address per window: a person mistyping
CONSOLE_SIGN_IN_WINDOW = 300  # seconds; …never reaches it, a password-guessing script does
CONSOLE_STREAM_POLL = 1.0  # seconds between looks for a changed board (live updates)
CONSOLE_STREAM_FOR = 300.0  # seconds a live-update stream lasts; the browser reconnects
# seconds a stopping web process gives the requests in flight (a webhook takes milliseconds);
# then the console's live-update streams, which never end by themselves, are cut (browsers
# reconnect) instead of holding the stop for CONSOLE_STREAM_FOR
WEB_SHUTDOWN_GRACE = 3
CONSOLE_BOARD_LIMIT = 200  # rows on the board: more than a screen, never the whole history
