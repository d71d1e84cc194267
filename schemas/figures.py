"""The figures DFIP computes: one declarative list used by the stream export, the simulator's
oracle, the Prometheus rules and the docs.

Every figure is kept as an integer in its *base integer unit* (fen for money, fen x 1e-6 for
the rate-weighted principal, plain counts otherwise) and only divided by ``scale`` at the
Prometheus boundary. Labels are bounded enums only; never an enterprise, loan or account id.

Semantics (the simulator's oracle implements the same rules independently):

* Exported values. Every series is an exact integer state per (labels, partition), exported
  as one division ``state / scale`` (Python ``int / int``: the correctly rounded double) in
  the Prometheus text format: fen / 100 for money, fen x rate units / 10^6 for the
  rate-weighted principal (so ``1,200,000.00`` yuan at ``annual_rate`` ``0.0420`` exports
  ``50400.0``), counts as they are. Compare per partition series with the integer sum divided
  once, not with a sum of per-event yuan. A series whose state is 0 (never added, added 0, or
  moved or ended back to 0: a zero-amount transaction's amount, a loan repaid to 0 but not
  closed, a 0 % loan's rate-weighted principal, a label set a restatement emptied, a gauge
  back at 0) has no sample: read an absent series as 0.
* Money. A money amount is converted to CNY fen once per event as
  ``round_half_even(amount x rate_to_cny x 100)``, computed exactly in decimal (no binary
  floats); CNY uses rate 1, so a CNY amount with more than two decimals is rounded the same
  way (``1.005`` → 100 fen). Figures sum these per-event integers. ``rate_to_cny`` is CNY
  per ONE unit of the currency, whatever the quoting convention of the source (a CFETS
  fixing quoted per 100 JPY, or as foreign units per CNY, is converted by its producer).
* Order of the checks. Each record read from ``dfip.transactions`` or ``dfip.loans`` gets
  the first of these verdicts that applies: not decodable or not valid → dead letter
  (``error_class`` below); dated too far ahead → dead letter ``future_dated``; on the wrong
  partition → forwarded (counted at home, below); ``event_id`` already remembered or waiting
  for a rate → duplicate; foreign currency with no rate in force → waits (see FX rate in
  force); not applicable to the loan book (see loans) → dead letter; else processed, and
  late or not. Only processed events are counted late: a late re-send is a duplicate only.
  A record of ``dfip.scores``: not decodable or not a valid DigitalizationScore → dead
  letter; ``assessed_at`` too far ahead → ``future_dated``; on the wrong partition →
  forwarded; ``event_id`` among the enterprise's kept versions → duplicate; else processed.
* Dead-letter ``error_class`` values: ``undecodable`` (value not UTF-8, or a null value /
  tombstone), ``invalid_json`` (not JSON, including an empty value), ``invalid_shape`` (JSON
  that is not an object, a missing or unknown ``kind`` / ``event_type``, a missing or
  non-integer ``schema_version``, a kind that does not belong on the
  topic), ``unsupported_version`` (a ``schema_version`` this worker does not read),
  ``invalid_field`` (an unknown or missing field, a JSON float where a decimal string is
  required, a bad USCC check character or a USCC not in upper case without spaces, an
  unknown currency, any time (``occurred_at``, ``published_at``, ...) before
  1970-01-01T00:00:00Z, any other field rule of docs/events.md; at the aggregate stage, like
  the loan book's verdicts (the event id is then not remembered, a re-send is judged again):
  a transaction worth 10^15 fen (10 trillion yuan, 10 万亿元) or more once converted to CNY
  at the rate in force, a ``disbursed`` principal worth 10^14 fen (1 万亿元) or more in CNY,
  a repayment larger than the outstanding or in another currency, a second ``disbursed`` of
  an active loan), ``future_dated``, ``unknown_loan``, ``fx_rate_missing``,
  ``processing_error`` (stage aggregate: processing the record raised an unexpected error,
  a defect; the record's offset is passed and figures it had already updated stay). Dead
  letters from adapters (``dfip ingest``) carry the adapter's
  classes as well (docs/adapters.md). A JSON object with a repeated name (at any depth) is
  not a dead letter: the name's last value is read (``{"amount": "1.00", "amount": "9.00"}``
  is an amount of 9.00); ``NaN`` / ``Infinity`` are not JSON (``invalid_json``). Which
  class when several apply: the value is first read as the ``kind`` (and ``event_type``) it
  names — UTF-8, JSON, an object with a known kind, ``schema_version``, then every field —
  and only a record valid as its own kind is then judged against the topic: a loan event
  with a bad field on ``dfip.transactions`` is ``invalid_field``, with ``schema_version`` 2
  ``unsupported_version``, and valid ``invalid_shape`` (a kind that does not belong there).
  Dead letters written by adapters (``dfip ingest``, classes of docs/adapters.md) never
  reach a worker's input topics and are not in ``dfip_events_deadlettered_total``: that
  counter counts the workers' own dead letters only. ``dfip.alerts.ack`` is not an event
  topic: its records are not counted received or processed; one that is not a valid
  AlertAck (whatever is wrong with it: not UTF-8, not JSON, a missing field) is counted in
  ``dfip_events_deadlettered_total{topic="dfip.alerts.ack", error_class="invalid_shape"}``,
  and a valid one that names no open hit is counted nowhere.
* Label ``topic`` is the catalog's topic name (``dfip.transactions``, ``dfip.loans``,
  ``dfip.scores``, ``dfip.fx``, ``dfip.alerts.ack``) whatever ``DFIP_KAFKA_TOPIC_PREFIX`` a
  deployment uses. Label ``partition`` is the input partition a figure was counted on:
  business figures on the enterprise's home partition ``partition_for(USCC) =
  (murmur2(USCC as UTF-8) & 0x7fffffff) mod 12`` (Kafka's default partitioner on the record
  key, the USCC, over the 12 partitions of every input topic); flow figures as the wrong
  partition rule below says (received where a record was read, its verdict at home).

* Label values. ``digitalization_band`` from the joined score's ``overall_score``: < 20
  ``l0``, [20, 40) ``l1``, [40, 60) ``l2``, [60, 80) ``l3``, >= 80 ``l4``; no score
  ``unscored``. ``region`` from the enterprise USCC's characters 3-6 (GB/T 2260 prefecture):
  3301 hangzhou, 3302 ningbo, 3303 wenzhou, 3304 jiaxing, 3305 huzhou, 3306 shaoxing,
  3307 jinhua, 3308 quzhou, 3309 zhoushan, 3310 taizhou, 3311 lishui, anything else
  ``other``. ``dpd_bucket`` from days past due: 1-29 ``1_29``, 30-59 ``30_59``, 60-89
  ``60_89``, >= 90 ``90_plus`` (0 days is not past due and is not in that gauge).
  ``institution_type``, ``direction``, ``customs_mode`` and ``decision`` are the event's
  fields as sent; ``decision`` is the loan event type (approved, rejected, withdrawn).
* Which events count where: ``transaction`` events make every ``dfip_transaction*`` series and
  the cross-border series when ``customs_mode`` is set; loan events: ``application_submitted``
  → applications, ``approved`` / ``rejected`` / ``withdrawn`` → decisions (both by the band
  of the event's own join), ``disbursed`` → disbursements, principal, rate-weighted
  principal (``principal_fen x round_half_even(annual_rate x 10000)``), inclusive SME, and a
  new active loan; ``repayment``, ``delinquency_changed`` (days past due),
  ``risk_class_changed``, ``defaulted``, ``written_off`` and ``closed`` change the active loan.
  Scores' ``valid_until``, ``framework``, ``institution_type`` and ``dimensions`` are not
  used: the newest assessment (by ``assessed_at``) of any framework applies, expired or not.
  Times are kept to the microsecond (further fraction digits are dropped).

* A transaction or loan event is *joined as of its event time*: the enterprise's band is that
  of the newest DigitalizationScore with ``assessed_at <= occurred_at``; none → ``unscored``.
  ``sector`` likewise comes from that score's ``industry_section`` (``unknown`` if unscored).
  The worker reads ``dfip.scores`` to its end before each batch, so an assessment written
  before the event is always used; one read after the event was counted restates it as
  below. Two assessments of one enterprise with the same
  ``assessed_at``: the one read last wins (when one of them reaches the home partition as a
  forwarded copy, which is read last depends on when the copy is read: inputs with such a
  pair have no single answer); the newest ``DFIP_WORKER_SCORE_HISTORY`` (8)
  assessments per enterprise (by ``assessed_at``) are kept, and the join uses only those: an
  event older than the oldest kept assessment joins as ``unscored``, also when a
  restatement re-joins it (a back-dated assessment older than the 8 kept is dropped at once,
  and the events it re-joins take the kept versions).
  ``dfip_enterprises_scored`` counts each enterprise once, under the band and sector of its
  assessment with the latest ``assessed_at``.
* Restatement (transactions, loan applications and loan decisions). When an assessment of enterprise
  E with ``assessed_at`` A is read (not a duplicate), let W be the larger of the
  ``dfip.transactions`` and ``dfip.loans`` watermarks of E's home partition at that moment and the
  *restatement floor* F = W - ``DFIP_WORKER_RESTATE_HORIZON_DAYS`` (default 120 days; no watermark
  yet → no floor). Every transaction, ``application_submitted``, ``approved``, ``rejected`` and
  ``withdrawn`` event of E already counted with ``occurred_at >= max(A', F)`` is joined again with
  E's kept assessments (A' = A, or the ``assessed_at`` of the oldest kept version the new one pushed
  out of the history if that is earlier: the events that version joined join again). A transaction
  whose band or sector changes moves its count and CNY amount from the old labels to the new ones in
  ``dfip_transactions_total``, ``dfip_transaction_amount_yuan_total`` and
  ``dfip_transactions_by_sector_total``, and (if it entered its windows when counted: not late, and
  not a forwarded or waiting event that missed them, see below) in its hourly and daily window,
  provided the transactions watermark is still before that window's end + grace + 24 h (the windows
  the worker holds); an amended window that had already been emitted is emitted again (same record
  key, so the compacted ``dfip.metrics`` keeps the amended one). An application or decision whose
  band changes moves in ``dfip_loan_applications_total`` / ``dfip_loan_decisions_total``. A loan
  still active when the assessment is read (disbursed, not closed or written off) whose
  ``disbursed`` event has ``occurred_at >= max(A', F)`` and whose vintage band changes moves
  entirely: its disbursement count, disbursed principal (by its frozen region), rate-weighted
  principal, the principal repaid so far (= its CNY principal at the booked rate minus its CNY
  outstanding) and its outstanding and active gauges; it counts 1 in
  ``dfip_restated_events_total{topic="dfip.loans"}``. Each move of an event adds 1 to
  ``dfip_restated_events_total`` with its topic (an event moved by two assessments counts twice; a
  transaction whose sector alone changes counts too; a loan event only when its band changes). A < F
  adds 1 to ``dfip_scores_beyond_restatement_total``: the assessment applies from F on (events
  counted earlier with ``occurred_at`` < F keep their band; events counted after it is read join
  with it normally). ``dfip_restated_events_total`` and ``dfip_scores_beyond_restatement_total`` are
  diagnostics that depend on the order in which the worker happened to read an assessment or rate
  relative to the events (consumer lag, restarts), not on the inputs alone: compare them with no
  oracle; the business figures are the ones fixed by the inputs. Hence an event's band and sector
  are those of the as-of join above whatever the order in which the assessment and the event were
  read, as long as every assessment read after the event was read while the event's ``occurred_at``
  was >= F. NOT restated (they keep the band joined at disbursement): loans that had ended (closed
  or written off) before the assessment was read, including their written-off principal, and loans
  restored from a changelog written before restatement existed (their disbursement time was not
  kept); the cross-border and inclusive SME series have no band; rule hits (``dfip_alerts_total``,
  ``dfip_alert_amount_yuan_total``) keep the band the rules saw (see Rule hits). Cap: per
  enterprise at most 10,000 distinct (``occurred_at``, institution type, direction or loan event
  type, windowed or not, band, sector) combinations at or after F are kept; a transaction,
  application or decision that would add another one is counted as usual but is never restated.
* FX rate in force. Amounts are converted to CNY fen with ``schemas.money.to_fen`` at the
  rate *in force* at ``occurred_at`` (CNY needs no rate), as the central bank publishes it:
  among the ``dfip.fx`` rates of the currency with ``published_at <= occurred_at``, the one
  with the latest ``rate_date`` on or before the event's calendar date in Asia/Shanghai
  (UTC+8: ``(occurred_at + 8 h).date()``), provided that ``rate_date`` is at most
  ``DFIP_WORKER_FX_MAX_AGE_DAYS`` (default 10) days before it. A weekend, a Monday before
  09:15 Beijing time or the Spring Festival / National Day closure therefore takes the last
  business day's rate. A re-published rate (same currency and ``rate_date``) is a
  correction: the value read last on ``dfip.fx`` replaces the earlier one (FX records are not
  deduplicated: a re-sent older record is a re-publication and wins as the one read last,
  both live and after a restart), and it is in force from the EARLIEST ``published_at`` of
  that currency and date on ``dfip.fx`` (so a correction never leaves an event without a
  rate). ``dfip.fx`` keeps every record forever and is never compacted (``cleanup.policy``
  delete, ``retention.ms`` and ``retention.bytes`` -1; ``dfip topics create`` sets an
  existing topic back to that), so a worker that restarts or takes over reads every
  publication again and finds the same in-force times: they never depend on log compaction
  (docs/operations.md, Reference topics keep every record). The rule is evaluated over ALL
  rates read, whatever the order in which rates and events were read:
  - *Waiting (parked).* A ``transaction`` or ``disbursed`` event in a foreign currency with no
    rate in force when it is processed is not counted yet: it waits in the partition's state
    (changelogged; it survives a restart or a move) and adds 1 to
    ``dfip_fx_pending_events{topic}``. Every later event of a loan whose ``disbursed`` event
    waits (other than application_submitted / approved / rejected / withdrawn, which need no
    loan) waits behind it, so a loan's events apply in the order they were read. Parked
    events are judged on arrival like any other: duplicate detection (a re-send of a parked
    event is a duplicate), lateness, and they move the watermark as if processed. As soon as
    a rate in force for it is read, a parked event is counted as if it had just been
    processed (as-of join with the assessments read by then, loan lifecycle, processed and,
    if it was late on arrival, late counters; its id is remembered from then on), in arrival
    order, and enters its hourly and daily windows only if it was not late and the
    topic-partition watermark is then still before ``occurred_at`` + grace + 24 h (else only
    the live figures). A parked event is dead-lettered ``fx_rate_missing`` (``stage``
    aggregate) once the partition's restatement floor F (see Restatement: the larger of the
    partition's transactions and loans watermarks minus ``DFIP_WORKER_RESTATE_HORIZON_DAYS``,
    event time) passes its ``occurred_at``, checked at the end of each batch; loan events
    waiting behind it are then applied (usually ``unknown_loan``). Safety cap: once
    10,000 events wait in a partition, a transaction or a disbursement with
    no rate in force is dead-lettered ``fx_rate_missing`` at once instead of waiting, except
    a loan event whose loan already has an event waiting (a disbursement sent twice, or any
    later event of that loan), which waits behind it beyond the cap, so that a loan's events
    still apply in the order they were read. Flow accounting: received =
    processed + duplicate + dead-lettered + ``dfip_fx_pending_events``, per topic.
  - *Restated (transactions).* A foreign-currency transaction already counted with
    ``occurred_at >= F`` whose rate in force changes when a rate is read (a newer
    ``rate_date`` published by its ``occurred_at``, or a correction) is converted again: the
    difference ``to_fen(amount, new) - to_fen(amount, old)`` moves its CNY amount in
    ``dfip_transaction_amount_yuan_total`` (under its current band) and
    ``dfip_crossborder_ecommerce_amount_yuan_total`` (if it has a customs mode) and, if it was
    windowed, its hourly and daily ``tx_amount_fen`` in the windows still held (watermark
    before window end + grace + 24 h; an emitted window is emitted again). Counts do not
    change. Each such change of a transaction's amount (difference not 0) adds 1 to
    ``dfip_restated_events_total{topic="dfip.transactions"}``. Later restatements by an
    assessment move the amended amount.
  - *Restated (loans).* A loan still active when a rate is read (disbursed, not closed or
    written off), in a foreign currency, whose ``disbursed`` event has ``occurred_at >= F``
    and whose rate in force at that ``occurred_at`` changes is re-booked at the new rate:
    with ``P = to_fen(principal, rate)`` and ``O = to_fen(outstanding, rate)`` before and
    after, its disbursed principal moves by ``P' - P`` (by its vintage band and region),
    rate-weighted principal by ``(P' - P) x rate units``, inclusive SME principal by
    ``P' - P`` if it was counted there, repaid principal by ``(P' - O') - (P - O)``, and
    its outstanding and past-due gauges and its borrower's total credit take the new values;
    if its disbursement was windowed, ``disbursed_fen`` moves in the windows still held. It
    counts 1 in ``dfip_restated_events_total{topic="dfip.loans"}`` (when an amount
    changes). NOT restated: loans that had ended before the rate was read (their repaid and
    written-off principal keep the old book rate), and the inclusive SME *eligibility*, which
    is decided once, at disbursement, with the borrower's total credit known then (for a
    disbursement that waited for its rate, "at disbursement" is when it is applied, so its
    eligibility depends on the borrower's loans active when its rate was read).
  - *At the bounds.* A re-conversion is held to the bounds a first conversion is held to: a
    transaction whose CNY value at the new rate would be 10^15 fen or more, or a loan whose
    principal at the new rate would be 10^14 fen or more, is not restated (it keeps its CNY
    value and book rate, and a later rate in force is applied to it as usual). Read before
    such an event, the same rate dead-letters it (``invalid_field``): for an event this close
    to the bounds the answer depends on read order.
  Each worker reads every rate but restates only the partitions it owns; the changelog
  records the rate each kept transaction was counted at, so a restart or a move restates
  exactly what the rates read by then require, once. Hence a transaction's CNY amount and an
  active loan's book rate are those of the rate in force over all rates read, whatever the
  order, as long as each rate was read while the event's ``occurred_at`` was >= F.
* A loan's band, region and institution type are frozen at disbursement (origination vintage:
  the band and region of the ``disbursed`` event's join, the institution type on it; later
  events of the loan are counted under these, whatever their own fields say). Its
  outstanding principal is kept exactly in the loan currency; its CNY value is
  ``to_fen(outstanding, book_rate)`` with ``book_rate`` the rate in force at disbursement
  (re-booked while it is active if a later-read rate changes that, see FX rate in force).
  The repaid CNY principal of a repayment (``principal_amount``; interest is not counted)
  is the *drop* in that CNY value, so disbursed = repaid + written off + outstanding holds
  to the fen for loans that end by repayment or write-off. A repayment larger than the
  outstanding principal, or in another currency than the loan's, is dead-lettered
  (``invalid_field``); loan events other than application_submitted / approved /
  rejected / withdrawn / disbursed for a loan not (or no longer) active are dead-lettered
  (``unknown_loan``); a second ``disbursed`` for an active loan id is ``invalid_field``.
  A loan is identified by its ``loan_id`` on its home partition, whatever the
  ``enterprise_uscc`` or ``lender_id`` of later events (loan ids must be unique among the
  enterprises whose USCCs share a partition). Loan events apply in the order they are read
  on the home topic-partition (Kafka order; a forwarded copy when it is read at home), not
  in ``occurred_at`` order: "last reported" means last read, and an event that cannot apply
  when read (a repayment read before its disbursement, any event after ``closed``) is
  dead-lettered then and never retried; a ``disbursed`` of a loan id that has ended opens a
  new loan.
* A loan's effective risk class is the worse of the last reported ``risk_class`` and the class
  implied by days past due (1..90 → special_mention, 91..270 → substandard, 271..360 →
  doubtful, > 360 → loss); ``defaulted`` makes it at least substandard for the rest of the
  loan's life. A new loan's reported class is ``normal`` with 0 days past due.
* ``written_off`` and ``closed`` end a loan: its outstanding principal leaves every gauge.
  ``written_off`` writes off the loan's whole outstanding principal (CNY at its book rate);
  the event's ``amount`` and ``currency`` are the lender's record and are not used.
  ``closed`` with principal still outstanding is accepted as the lender's word: that remainder
  is neither repaid nor written off (it leaves the gauges only).
* Inclusive SME principal (普惠型小微企业贷款, the regulator's definition: total credit per
  borrower of CNY 10 million or less, inclusive): a ``disbursed`` event counts its CNY
  principal when its ``inclusive_sme`` flag is true AND the borrower's total credit on the
  platform is at most 1,000,000,000 fen. The total credit is the sum, over the borrower's
  loans active at that moment (disbursed, not closed or written off; any institution), of
  each loan's disbursed principal in CNY fen at its booked rate, this loan included. A
  borrower's loans all live on one partition (the key is the USCC), so this is exact.
* Duplicates (same ``event_id`` seen before) and dead-lettered events do not contribute to
  business figures; they are counted in the health counters.
* A transaction or loan event whose ``occurred_at`` (a score: ``assessed_at``) is more than
  ``DFIP_WORKER_MAX_FUTURE_SECONDS`` (default 1 day) after its Kafka record timestamp is
  dead-lettered (``future_dated``) where it lands, before it can move a watermark; records
  without a timestamp are not checked.
* Watermark and lateness are per input *topic-partition* (the only order Kafka defines): the
  watermark is the largest ``occurred_at`` of the events that landed on that topic-partition
  and were processed there or forwarded from it (duplicates and dead letters do not move it;
  a forwarded copy moves the watermark of the partition it landed on, even if it proves a
  duplicate at home, and never the home partition's). An event is *late* when its
  ``occurred_at < watermark - grace`` (default grace: 10 minutes, ``DFIP_WORKER_GRACE_SECONDS``).
  Late events still count in these live figures; they are excluded from event-time windows,
  counted in ``dfip_events_late_total`` and copied to ``dfip.late``.
* An event that lands on the wrong partition (the partition it was written to is not
  ``partition_for(enterprise_uscc)``, whatever its record key; a record with a wrong or null
  key written to the right partition is simply processed there) is validated and judged
  late-or-not against the watermark of the partition it *landed* on (and moves that
  watermark), then forwarded unchanged to the right partition, where duplicates are detected
  and the figures are updated. At home it enters the hourly and daily windows only if it was
  not late where it landed and the home watermark is still before ``occurred_at`` + grace +
  24 h (the windows the home partition holds); a held window already emitted is emitted again
  (the metrics topic is compacted, so the amended record replaces the first). The home
  partition's windows, restatement floor and waiting deadline therefore follow the events that
  land there, not the forwarded ones. Flow figures of a forwarded event:
  ``dfip_events_received_total`` +1 where it landed only (the copy the worker writes to the
  home partition is a new offset of the same input topic, but it is not received again); its
  verdict (processed, duplicate, dead-lettered by the loan book, waiting, late) is counted at
  home. So received = processed + duplicate + dead-lettered + waiting holds per topic summed
  over partitions, not per partition, and the input topic's offsets exceed the records
  received by the number of forwarded copies. A score on ``dfip.scores`` that lands on the
  wrong partition is forwarded the same way (received where it landed; processed or duplicate
  at home, where the join uses it from when the copy is read there: events of that enterprise
  counted before are restated as for any assessment read after them, see Restatement).
* Event-time windows: hourly and daily, per topic-partition, on the calendar of
  ``DFIP_WORKER_WINDOW_ZONE`` (default Asia/Shanghai, UTC+8 all year): a daily window is
  ``[local midnight, next local midnight)`` — for Beijing 16:00 to 16:00 UTC — and an hourly
  one a local clock hour (for Beijing the UTC hours); each record names its ``zone`` and
  ``local_date``. A window is closed when, at the end of a batch, the watermark is
  ``>= end + grace``; one record per (size, start, topic, partition) on ``dfip.metrics``
  with the window's transaction count and CNY amount by (institution_type,
  digitalization_band) and disbursed principal by (institution_type,). The record: key
  ``{size}:{window_start}:{topic}:{partition}`` with times written as ISO 8601 with a
  ``+00:00`` offset, not ``Z``, and the topic without any deployment prefix
  (``1d:2026-10-31T16:00:00+00:00:dfip.transactions:7``), value
  ``{"kind": "window_figures", "size": "1h"|"1d", "window_start", "window_end", "zone",
  "local_date", "topic", "partition", "figures": {"tx_count" | "tx_amount_fen" |
  "disbursed_fen": [{"labels": [...], "value": int}]}}``, amounts in integer FEN; label rows
  at 0 are absent. A topic-partition has windows only for the hours and days in which it
  counted an event (``dfip.loans``: a disbursement).
* Duplicate detection is per *topic-partition* (the home partition of the event: the key is the
  enterprise USCC, so re-sends of a document land there) on ``event_id``, and its horizon is ARRIVAL
  time, never event time. Each topic-partition has an arrival clock: the largest Kafka record
  timestamp read from it so far (every record counts: valid or not, forwarded copies included, with
  the timestamp of the record they copy; another topic or partition never moves it), the record
  being judged included: its own timestamp moves the clock (and expires the ids of days that passed)
  before its id is looked up. An id first processed while that clock is on UTC day ``d``
  (``floor(clock_ms / 86400000)``) is remembered until the clock reaches day ``d +
  DFIP_WORKER_DEDUP_RETENTION_DAYS + 1`` (default 45 days: a monthly statement re-sent up to two
  weeks after month end counts once). A re-send does not extend the memory. Safety cap: when a
  topic-partition remembers more than ``DFIP_WORKER_DEDUP_MAX_ENTRIES`` (20,000,000) ids at the end
  of a batch or when its arrival clock enters a new day, its oldest arrival days (never the current
  one) are forgotten early, each whole, until it is back under the cap (logged; a re-send of a
  forgotten id counts again, and which ones depends on batch boundaries: no single answer); inputs
  below the cap never meet it. Only processed events are remembered: a record that was dead-lettered
  can be corrected and sent again with the same id. Record timestamps are the producer's
  (CreateTime): a record stamped older than its topic's retention (``dfip.transactions`` 7 days,
  ``dfip.loans`` 30 days, see docs/events.md) is deleted by the broker at its next retention check
  (within ``log.retention.check.interval.ms``, 5 minutes by default), read or not, so a replay of
  old records must be read before then or be stamped recently. Scores are deduplicated by
  ``event_id`` against the enterprise's kept assessment versions (no time bound; a score with a new
  ``event_id`` is never a duplicate, whatever its content): a re-send of a version that was replaced
  (same ``assessed_at``) or dropped (beyond the 8 kept) is processed again. ``dfip.scores`` is
  counted in the flow figures on its own partitions; ``dfip.fx`` (every worker reads every rate) is
  counted once, by the owner of input partition 0, under ``partition="0"``, and every valid FX
  record is processed (none is a duplicate, see FX rate in force). Ids are held as 64-bit hashes (a
  false duplicate needs a hash collision: probability about n^2 / 2^65 for n remembered ids).
* Rule hits (docs/aml-rules.md: which rules, their thresholds and windows, and "Precisely";
  a window ``[start, end)`` is decided at the end of the batch in which the partition's
  ``dfip.transactions`` watermark reaches ``end`` + grace). The rules see the transactions
  counted on their home partition that are not late and not forwarded copies (a parked one if
  its ``occurred_at`` is still >= watermark - grace when its rate is read), each with the CNY
  fen and band it was counted with then. Each committed record on ``dfip.alerts`` is one hit,
  counted once on the partition it was written to: ``dfip_alerts_total`` +1 and
  ``dfip_alert_amount_yuan_total`` + its ``total_fen``, with labels ``rule``, ``region``,
  ``institution_type`` and ``digitalization_band`` = the record's ``rule``, ``region``,
  ``institution_type`` and ``band`` fields (those of the hit's first event by
  (``occurred_at``, ``event_id``), the band the rules saw it with: an assessment or FX rate
  read later, before or after the decision, moves neither a hit nor its amount).
* Overdue reports, ``dfip_alerts_overdue`` (a gauge, same labels): the distinct hit ids
  (``event_id``) on ``dfip.alerts`` whose ``report_due`` date is strictly before *today*,
  the calendar date in Beijing (UTC+8) on the exporting worker's clock at the scrape, and
  that are not
  acknowledged. A hit is acknowledged by a committed record on ``dfip.alerts.ack`` whose
  ``alert_id`` equals the hit's ``event_id`` and whose ``enterprise_uscc`` equals the hit's,
  written to the same partition number as the hit (key = the USCC, as ``dfip alerts ack``
  writes it) after the hit was committed; either ``outcome`` (reported, dismissed)
  acknowledges it, a second acknowledgement changes nothing, and an acknowledgement of an
  unknown or not yet written hit is ignored (it does not wait for the hit). A record there
  that is not a valid AlertAck goes to the dead-letter topic
  (``dfip_events_deadlettered_total{topic="dfip.alerts.ack"}``). The worker reads a
  partition's acknowledgements before each batch of events and on idle ticks, so the gauge
  includes an acknowledgement within ``DFIP_WORKER_IDLE_COMMIT_MS`` plus a commit of it
  being written. ``report_due`` is the 5th China working day after the Beijing date of the
  hit's last event: public holidays and adjusted working weekends (调休) from the
  ``chinese-calendar`` package as pinned in constraints.txt (1.11.0: the State Council
  arrangements of 2004-2026); in a year that version does not cover (2027 on), Monday to
  Friday are the working days until the pin is updated. A hit id written twice (its events
  counted again once the duplicate horizon had passed, so ``dfip_alerts_total`` counts it
  twice) while the first is still open is one report: it counts once here and one
  acknowledgement closes it; written again after it was acknowledged, it is open again (a
  second report, as its events were counted again) until acknowledged again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FIGURES", "FIGURES_BY_NAME", "HEALTH_FIGURES", "RATE_SCALE", "Figure"]

# annual_rate is taken to 4 decimal places (1 bp, half-even); Σ principal_fen x rate_bp stays
# an integer small enough to survive the float64 of the Prometheus exposition exactly.
RATE_SCALE = 10_000

FigureType = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Figure:
    """One exported metric family."""

    name: str
    type: FigureType
    labels: tuple[str, ...]
    help: str
    # exported value = integer state / scale (fen → yuan is 100)
    scale: int = 1


_TX = ("institution_type", "digitalization_band", "region", "direction")
_ALERT = ("rule", "region", "institution_type", "digitalization_band")
_LOAN = ("institution_type", "digitalization_band", "region")

FIGURES: tuple[Figure, ...] = (
    Figure("dfip_transactions_total", "counter", _TX, "Booked transactions."),
    Figure(
        "dfip_transaction_amount_yuan_total", "counter", _TX, "Booked amount in CNY.", scale=100
    ),
    Figure(
        "dfip_transactions_by_sector_total",
        "counter",
        ("sector", "digitalization_band"),
        "Booked transactions by the enterprise's GB/T 4754 section (as of event time).",
    ),
    Figure(
        "dfip_crossborder_ecommerce_payments_total",
        "counter",
        ("customs_mode", "institution_type"),
        "Transactions carrying a cross-border e-commerce customs mode (9610/9710/9810/1210).",
    ),
    Figure(
        "dfip_crossborder_ecommerce_amount_yuan_total",
        "counter",
        ("customs_mode", "institution_type"),
        "CNY amount of cross-border e-commerce transactions.",
        scale=100,
    ),
    Figure(
        "dfip_loan_applications_total",
        "counter",
        ("institution_type", "digitalization_band"),
        "Loan applications submitted.",
    ),
    Figure(
        "dfip_loan_decisions_total",
        "counter",
        ("institution_type", "digitalization_band", "decision"),
        "Loan applications decided: approved, rejected or withdrawn.",
    ),
    Figure("dfip_loan_disbursements_total", "counter", _LOAN, "Loans disbursed."),
    Figure(
        "dfip_loan_disbursed_principal_yuan_total",
        "counter",
        _LOAN,
        "Principal disbursed, CNY.",
        scale=100,
    ),
    Figure(
        "dfip_loan_disbursed_rate_weighted_yuan_total",
        "counter",
        ("institution_type", "digitalization_band"),
        "Σ principal x annual rate of disbursements, CNY (divide by principal for the average).",
        scale=100 * RATE_SCALE,
    ),
    Figure(
        "dfip_loan_inclusive_sme_disbursed_principal_yuan_total",
        "counter",
        ("institution_type",),
        "Principal disbursed as inclusive SME loans (borrower's total credit <= CNY 10 million), "
        "CNY.",
        scale=100,
    ),
    Figure(
        "dfip_loan_repaid_principal_yuan_total",
        "counter",
        ("institution_type", "digitalization_band"),
        "Principal repaid, CNY (at the loan's booked rate).",
        scale=100,
    ),
    Figure(
        "dfip_loan_written_off_principal_yuan_total",
        "counter",
        ("institution_type", "digitalization_band"),
        "Outstanding principal written off, CNY.",
        scale=100,
    ),
    Figure(
        "dfip_loan_outstanding_principal_yuan",
        "gauge",
        ("institution_type", "digitalization_band", "risk_class"),
        "Outstanding principal of active loans, CNY, by effective risk class.",
        scale=100,
    ),
    Figure(
        "dfip_loan_past_due_principal_yuan",
        "gauge",
        ("institution_type", "dpd_bucket"),
        "Outstanding principal of loans past due, CNY, by days-past-due bucket.",
        scale=100,
    ),
    Figure(
        "dfip_loans_active",
        "gauge",
        ("institution_type", "digitalization_band"),
        "Disbursed loans not yet closed or written off.",
    ),
    Figure(
        "dfip_borrowers_active",
        "gauge",
        (),
        "Distinct enterprises with at least one active loan.",
    ),
    Figure(
        "dfip_enterprises_scored",
        "gauge",
        ("digitalization_band", "sector"),
        "Enterprises by the band and sector of their newest assessment (by assessed_at).",
    ),
    Figure(
        "dfip_alerts_total",
        "counter",
        _ALERT,
        "Rule hits written to dfip.alerts (docs/aml-rules.md), by the hit's first event.",
    ),
    Figure(
        "dfip_alert_amount_yuan_total",
        "counter",
        _ALERT,
        "CNY amount of the events of rule hits.",
        scale=100,
    ),
    Figure(
        "dfip_alerts_overdue",
        "gauge",
        _ALERT,
        "Rule hits whose report_due date is before today's Beijing date (at the scrape) and "
        "that no dfip.alerts.ack record has acknowledged (see Semantics).",
    ),
)

# Flow accounting, per input topic (catalog name without prefix, e.g. "dfip.transactions"):
# received = processed + duplicate + deadlettered, exactly.
HEALTH_FIGURES: tuple[Figure, ...] = (
    Figure(
        "dfip_events_received_total",
        "counter",
        ("topic",),
        "Records read from an input topic (each offset once; a forwarded copy is not"
        " received again at home, see Semantics).",
    ),
    Figure(
        "dfip_events_processed_total",
        "counter",
        ("topic",),
        "Valid, first-seen events applied to the figures.",
    ),
    Figure(
        "dfip_events_duplicate_total",
        "counter",
        ("topic",),
        "Events dropped because their event_id was already seen.",
    ),
    Figure(
        "dfip_events_deadlettered_total",
        "counter",
        ("topic", "error_class"),
        "Records sent to the dead-letter topic, by error class.",
    ),
    Figure(
        "dfip_events_late_total",
        "counter",
        ("topic",),
        "Events older than the partition watermark minus the grace period (also on dfip.late).",
    ),
    Figure(
        "dfip_restated_events_total",
        "counter",
        ("topic",),
        "Counted events moved to another band or sector by a later-read assessment, or "
        "whose CNY amount a later-read FX rate changed (each move counts; see Restatement).",
    ),
    Figure(
        "dfip_scores_beyond_restatement_total",
        "counter",
        (),
        "Assessments read with assessed_at before the restatement floor: they restate "
        "only from the floor on.",
    ),
    Figure(
        "dfip_fx_pending_events",
        "gauge",
        ("topic",),
        "Events waiting for an FX rate in force (parked; see FX rate in force): received, "
        "not yet processed or dead-lettered.",
    ),
)

FIGURES_BY_NAME: dict[str, Figure] = {f.name: f for f in (*FIGURES, *HEALTH_FIGURES)}


def _check_names() -> None:
    """`schemas.figure_names` and the figure list name the same figures (see there why)."""
    from schemas import figure_names

    declared = {getattr(figure_names, c) for c in figure_names.__all__}
    if declared != set(FIGURES_BY_NAME):
        raise RuntimeError(
            "schemas/figure_names.py and FIGURES disagree: "
            f"only in figure_names {sorted(declared - set(FIGURES_BY_NAME))}, "
            f"only in FIGURES {sorted(set(FIGURES_BY_NAME) - declared)}"
        )


_check_names()
