// Schedules of the scheduler extension: when a task's next occurrence is.
//
// A Schedule is compiled once from a task's (schedule_kind, schedule_expr,
// timezone) and then answers `next_after(t)`: the first occurrence strictly
// after instant t. Compilation validates everything (bad input never reaches
// the evaluator); evaluation is bounded and allocation-light.
//
// Kinds and accepted expressions (docs/scheduler.md, "Schedules", has the
// user-facing version):
//   cron    5 fields "minute hour day-of-month month day-of-week": "*", numbers,
//           ranges "a-b", lists "a,b", steps "*/n", "a-b/n" and "a/n" (= a-max/n),
//           month names JAN-DEC, weekday names SUN-SAT (case-insensitive), 0 and
//           7 both Sunday. Vixie OR-semantics: when both day fields are
//           restricted (neither starts with '*') a day matches if EITHER field
//           matches; otherwise both must (so "*/2" counts as unrestricted, as in
//           Vixie cron). Aliases @yearly @annually @monthly @weekly @daily
//           @midnight @hourly. A cron that can never match (e.g. "0 0 30 2 *")
//           is a compile error (invalid_cron), so next_after never hunts for it.
//   rrule   RFC 5545 RRULE ("FREQ=DAILY;BYHOUR=9" or "RRULE:..."), optionally
//           after a "DTSTART:..." / "DTSTART;TZID=Zone:..." / "DTSTART;VALUE=DATE:..."
//           line. Expanded by libical (no RRULE engine of our own). Without a
//           DTSTART the `anchor` (creation time, as civil time in `timezone`) is
//           the DTSTART; as RFC 5545 says, the parts a rule does not fix (e.g.
//           the minute and second of "FREQ=DAILY;BYHOUR=9") come from DTSTART.
//           A DTSTART with TZID evaluates the rule in that zone; one ending in
//           "Z" evaluates it in UTC; a floating one in `timezone`.
//   once    RFC 3339 date-time; without an offset it is civil time in `timezone`.
//           Fractional seconds are dropped.
//   event   a topic pattern of the event bus ("a.b", "a.*", "*"); next_after is
//           always nullopt, matches_topic() says whether a topic fires it.
//   manual  expr must be empty; next_after is always nullopt.
//
// Time zones and DST. cron and rrule are evaluated in CIVIL (local wall-clock)
// time of the zone, then each civil occurrence is mapped to an instant with
// cctz:
//   - a civil time that does not exist (spring-forward gap) runs at the
//     transition instant, i.e. the first valid time after the gap; several
//     occurrences inside one gap collapse into that one run;
//   - a civil time that occurs twice (fall-back) runs once, at its FIRST
//     occurrence (the earlier UTC instant); the repeated hour is not run again.
// This mapping preserves order, which is what makes "first occurrence strictly
// after" well defined. Why floating (zone-less) expansion in libical + cctz
// rather than libical's own zones: libical zones come from VTIMEZONE data or
// libical's own zone tables, and what it does with gaps and repeats would be
// libical's choice, not ours; cctz reads the system's tzdata and reports gaps
// and repeats explicitly (cctz::time_zone::lookup), so the policy above is
// implemented once for cron, rrule and once alike, and cron and rrule agree
// (the tests check that equivalent cron and RRULE schedules give the same runs
// across DST). UNTIL is likewise enforced on instants, not by libical.
//
// Time zone names are IANA names ("Europe/Bucharest", "UTC"; empty = "UTC"),
// checked for syntax (no paths, no "localtime") and loaded by cctz.
//
// Cost and limits: cron next_after jumps field by field (month, day, hour,
// minute), well under a microsecond for ordinary crons and bounded by a 400-year
// search (one Gregorian cycle) otherwise. RRULE next_after skips ahead to
// `after` (libical set_start, or DTSTART moved by whole intervals) except for
// COUNT rules, which are counted from DTSTART; their walk is kept and continued
// when `after` moves forward. Expressions up to 1024 bytes; COUNT up to 100000;
// BYMONTHDAY days no BYMONTH month has are refused up front (libical would
// search for a long time first), and so are SECONDLY/MINUTELY/HOURLY rules
// with BYMONTH/BYMONTHDAY/BYYEARDAY/BYWEEKNO (libical steps through every
// unit, ~30 us each, so one next() could take minutes); libical expands up to year 2582 (later
// occurrences do not exist: nullopt); cron and once accept years up to 9999.
//
// Error codes: invalid_cron, invalid_rrule, invalid_once, invalid_event_pattern,
// unknown_timezone, invalid_schedule (manual with an expression, over-long
// input). Messages name the field and the value, e.g.
//   cron field 2 (hour) "25" is out of range 0-23
//
// Thread safety: a compiled Schedule is immutable apart from the COUNT walk,
// which a mutex guards; next_after may be called concurrently from several
// threads. Copies share the compiled state. compile() sets libical's process-wide
// "errors are fatal" flag to false once, so malformed rules come back as errors.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ordinaut/result.hpp"

namespace ordinaut::scheduler {

/// A point in time, whole seconds since the Unix epoch (UTC).
using Instant = std::chrono::sys_seconds;

enum class ScheduleKind { cron, rrule, once, event, manual };

/// "cron" | "rrule" | "once" | "event" | "manual" (exact, lower case); nullopt otherwise.
std::optional<ScheduleKind> parse_schedule_kind(std::string_view name);
/// The name parse_schedule_kind accepts for `kind`.
std::string_view to_string(ScheduleKind kind);

class Schedule {
 public:
  /// Validates and compiles a schedule. `timezone` is an IANA name ("" = "UTC");
  /// `anchor` is the DTSTART of an RRULE without one (the task's creation time).
  static Result<Schedule> compile(ScheduleKind kind, std::string_view expr, std::string_view timezone, Instant anchor);

  /// First occurrence strictly after `after`; nullopt when there is none (ended
  /// RRULE, past once, event and manual kinds).
  std::optional<Instant> next_after(Instant after) const;
  /// Event kind: whether a published `topic` fires this schedule. False for other kinds.
  bool matches_topic(std::string_view topic) const;

  ScheduleKind kind() const;
  /// The expression as given, surrounding whitespace trimmed.
  const std::string& expr() const;
  /// The task's time zone name, "UTC" when it was given empty.
  const std::string& timezone() const;
  /// The zone the schedule is evaluated in: timezone(), or the TZID of an RRULE's
  /// DTSTART ("UTC" for a DTSTART ending in Z).
  const std::string& effective_timezone() const;

  struct Impl;  // defined in schedule.cpp

 private:
  explicit Schedule(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ordinaut::scheduler
