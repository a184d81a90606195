// lib/extensions/scheduler/schedule.*: cron fields and aliases, RRULE through
// libical, once timestamps, event patterns, time zones, and the DST policy
// (gap -> transition instant, repeat -> first occurrence) in two zones.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include "schedule.hpp"

using ordinaut::scheduler::Instant;
using ordinaut::scheduler::parse_schedule_kind;
using ordinaut::scheduler::Schedule;
using ordinaut::scheduler::ScheduleKind;

namespace {

// "2026-03-08 07:00:00" read as UTC.
Instant utc(const std::string& text) {
  cctz::time_point<cctz::seconds> tp;
  const bool ok = cctz::parse("%Y-%m-%d %H:%M:%S", text, cctz::utc_time_zone(), &tp);
  REQUIRE_MESSAGE(ok, text);
  return Instant(tp.time_since_epoch());
}

std::string iso(std::optional<Instant> t) {
  if (!t) return "none";
  return cctz::format("%Y-%m-%d %H:%M:%S", cctz::time_point<cctz::seconds>(t->time_since_epoch()),
                      cctz::utc_time_zone());
}

// The creation time given to compile (an RRULE's DTSTART when it has none).
const Instant kAnchor = Instant(std::chrono::seconds(1767602232));  // 2026-01-05 08:37:12 UTC

Schedule compile(ScheduleKind kind, const std::string& expr, const std::string& tz = "UTC", Instant anchor = kAnchor) {
  auto s = Schedule::compile(kind, expr, tz, anchor);
  REQUIRE_MESSAGE(s.ok(), expr, " -> ", (s.ok() ? "" : s.error().message));
  return *s;
}

Schedule cron(const std::string& expr, const std::string& tz = "UTC") { return compile(ScheduleKind::cron, expr, tz); }
Schedule rrule(const std::string& expr, const std::string& tz = "UTC", Instant anchor = kAnchor) {
  return compile(ScheduleKind::rrule, expr, tz, anchor);
}

ordinaut::Error error_of(ScheduleKind kind, const std::string& expr, const std::string& tz = "UTC") {
  auto s = Schedule::compile(kind, expr, tz, kAnchor);
  REQUIRE_MESSAGE(!s.ok(), expr, " compiled but should not");
  return s.error();
}

// The next n occurrences after `after`, as UTC text.
std::vector<std::string> next_n(const Schedule& s, Instant after, int n) {
  std::vector<std::string> out;
  std::optional<Instant> t = after;
  for (int i = 0; i < n; ++i) {
    t = s.next_after(*t);
    out.push_back(iso(t));
    if (!t) break;
  }
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("the anchor constant is what its comment says") { CHECK(kAnchor == utc("2026-01-05 08:37:12")); }

TEST_CASE("schedule kinds: names round-trip, unknown names refused") {
  for (auto k :
       {ScheduleKind::cron, ScheduleKind::rrule, ScheduleKind::once, ScheduleKind::event, ScheduleKind::manual}) {
    CHECK(parse_schedule_kind(ordinaut::scheduler::to_string(k)) == k);
  }
  CHECK(ordinaut::scheduler::to_string(ScheduleKind::rrule) == "rrule");
  CHECK_FALSE(parse_schedule_kind("CRON").has_value());
  CHECK_FALSE(parse_schedule_kind("interval").has_value());
  CHECK_FALSE(parse_schedule_kind("").has_value());
}

TEST_CASE("cron: every field form") {
  const Instant t0 = utc("2026-01-05 10:07:00");  // a Monday
  SUBCASE("star and step") {
    CHECK(next_n(cron("*/15 * * * *"), t0, 3) ==
          V{"2026-01-05 10:15:00", "2026-01-05 10:30:00", "2026-01-05 10:45:00"});
  }
  SUBCASE("every minute, strictly after") {
    CHECK(next_n(cron("* * * * *"), utc("2026-01-05 10:07:00"), 2) == V{"2026-01-05 10:08:00", "2026-01-05 10:09:00"});
    CHECK(iso(cron("* * * * *").next_after(utc("2026-01-05 10:07:59"))) == "2026-01-05 10:08:00");
  }
  SUBCASE("list") {
    CHECK(next_n(cron("5,10 * * * *"), t0, 3) ==
          V{"2026-01-05 10:10:00", "2026-01-05 11:05:00", "2026-01-05 11:10:00"});
  }
  SUBCASE("range") {
    CHECK(next_n(cron("10-11 * * * *"), utc("2026-01-05 10:11:00"), 2) ==
          V{"2026-01-05 11:10:00", "2026-01-05 11:11:00"});
  }
  SUBCASE("range with step") {
    CHECK(next_n(cron("0-30/10 9 * * *"), t0, 4) ==
          V{"2026-01-06 09:00:00", "2026-01-06 09:10:00", "2026-01-06 09:20:00", "2026-01-06 09:30:00"});
  }
  SUBCASE("value with step means value-max/step") {
    CHECK(next_n(cron("5/20 10 * * *"), t0, 3) ==
          V{"2026-01-05 10:25:00", "2026-01-05 10:45:00", "2026-01-06 10:05:00"});
  }
  SUBCASE("hour range with step") {
    CHECK(next_n(cron("0 9-17/4 * * *"), t0, 3) ==
          V{"2026-01-05 13:00:00", "2026-01-05 17:00:00", "2026-01-06 09:00:00"});
  }
  SUBCASE("day of month") {
    CHECK(next_n(cron("0 0 1,15 * *"), t0, 3) ==
          V{"2026-01-15 00:00:00", "2026-02-01 00:00:00", "2026-02-15 00:00:00"});
  }
  SUBCASE("month numbers and names, any case") {
    CHECK(next_n(cron("0 0 1 JAN,jul *"), t0, 3) ==
          V{"2026-07-01 00:00:00", "2027-01-01 00:00:00", "2027-07-01 00:00:00"});
    CHECK(next_n(cron("0 0 1 1,7 *"), t0, 3) == next_n(cron("0 0 1 Jan,JUL *"), t0, 3));
    CHECK(next_n(cron("0 0 1 mar-may *"), t0, 3) ==
          V{"2026-03-01 00:00:00", "2026-04-01 00:00:00", "2026-05-01 00:00:00"});
  }
  SUBCASE("weekday names and ranges") {
    // Friday 2026-01-09 10:00 -> Monday 9:00.
    CHECK(next_n(cron("0 9 * * MON-FRI"), utc("2026-01-09 10:00:00"), 2) ==
          V{"2026-01-12 09:00:00", "2026-01-13 09:00:00"});
    CHECK(next_n(cron("0 9 * * 1-5"), utc("2026-01-09 10:00:00"), 2) ==
          V{"2026-01-12 09:00:00", "2026-01-13 09:00:00"});
  }
  SUBCASE("0 and 7 are both Sunday") {
    const V sundays{"2026-01-11 00:00:00", "2026-01-18 00:00:00"};
    CHECK(next_n(cron("0 0 * * 0"), t0, 2) == sundays);
    CHECK(next_n(cron("0 0 * * 7"), t0, 2) == sundays);
    CHECK(next_n(cron("0 0 * * sun"), t0, 2) == sundays);
    // Friday to Sunday through 7.
    CHECK(next_n(cron("0 0 * * 5-7"), t0, 4) ==
          V{"2026-01-09 00:00:00", "2026-01-10 00:00:00", "2026-01-11 00:00:00", "2026-01-16 00:00:00"});
    CHECK(next_n(cron("0 0 * * 7/2"), t0, 2) == sundays);  // 7 to 7 every 2: Sunday
    CHECK(next_n(cron("0 0 * * 6/1"), t0, 3) == V{"2026-01-10 00:00:00", "2026-01-11 00:00:00", "2026-01-17 00:00:00"});
    CHECK(next_n(cron("0 0 * * */3"), t0, 3) == V{"2026-01-07 00:00:00", "2026-01-10 00:00:00", "2026-01-11 00:00:00"});
  }
  SUBCASE("Vixie OR when both day fields are restricted") {
    // The 13th, or any Friday: Fri 9th, Tue 13th, Fri 16th.
    CHECK(next_n(cron("0 0 13 * FRI"), t0, 3) ==
          V{"2026-01-09 00:00:00", "2026-01-13 00:00:00", "2026-01-16 00:00:00"});
  }
  SUBCASE("AND when a day field starts with '*'") {
    // "*/2" in day-of-month counts as unrestricted: odd days that are Fridays.
    CHECK(next_n(cron("0 0 */2 * FRI"), t0, 3) ==
          V{"2026-01-09 00:00:00", "2026-01-23 00:00:00", "2026-02-13 00:00:00"});
    // "*" weekday: only the day of month counts.
    CHECK(next_n(cron("0 0 13 * *"), t0, 2) == V{"2026-01-13 00:00:00", "2026-02-13 00:00:00"});
  }
  SUBCASE("whitespace between fields") {
    CHECK(iso(cron("  0\t12  *  * *  ").next_after(t0)) == "2026-01-05 12:00:00");
  }
}

TEST_CASE("cron: aliases") {
  const Instant t0 = utc("2026-01-05 10:07:00");
  CHECK(iso(cron("@hourly").next_after(t0)) == "2026-01-05 11:00:00");
  CHECK(iso(cron("@daily").next_after(t0)) == "2026-01-06 00:00:00");
  CHECK(iso(cron("@midnight").next_after(t0)) == "2026-01-06 00:00:00");
  CHECK(iso(cron("@weekly").next_after(t0)) == "2026-01-11 00:00:00");
  CHECK(iso(cron("@monthly").next_after(t0)) == "2026-02-01 00:00:00");
  CHECK(iso(cron("@yearly").next_after(t0)) == "2027-01-01 00:00:00");
  CHECK(iso(cron("@annually").next_after(t0)) == "2027-01-01 00:00:00");
  CHECK(iso(cron("@DAILY").next_after(t0)) == "2026-01-06 00:00:00");
  CHECK(cron("@daily").expr() == "@daily");
}

TEST_CASE("cron: month ends and leap years") {
  // The 31st skips the months without one.
  CHECK(next_n(cron("0 0 31 * *"), utc("2026-01-31 01:00:00"), 3) ==
        V{"2026-03-31 00:00:00", "2026-05-31 00:00:00", "2026-07-31 00:00:00"});
  // February 29th only in leap years; 2100 is not one.
  CHECK(next_n(cron("0 0 29 2 *"), utc("2026-03-01 00:00:00"), 2) == V{"2028-02-29 00:00:00", "2032-02-29 00:00:00"});
  CHECK(iso(cron("0 0 29 2 *").next_after(utc("2096-03-01 00:00:00"))) == "2104-02-29 00:00:00");
  // Last minute of the year rolls into the next.
  CHECK(iso(cron("0 0 * * *").next_after(utc("2026-12-31 23:59:59"))) == "2027-01-01 00:00:00");
  // February 29th that is a Wednesday ("*" day-of-month rule: AND of weekday and day).
  CHECK(iso(cron("0 0 29 2 */3").next_after(utc("2026-01-01 00:00:00"))) == "2032-02-29 00:00:00");
  // 365 daily runs in 2026.
  const Schedule daily = cron("@daily");
  Instant t = utc("2025-12-31 12:00:00");
  int n = 0;
  while (true) {
    auto next = daily.next_after(t);
    REQUIRE(next);
    if (*next >= utc("2027-01-01 00:00:00")) break;
    t = *next;
    ++n;
  }
  CHECK(n == 365);
}

TEST_CASE("cron: impossible expressions are compile errors, not endless searches") {
  auto e = error_of(ScheduleKind::cron, "0 0 30 2 *");
  CHECK(e.code == "invalid_cron");
  CHECK(e.message == "cron expression \"0 0 30 2 *\" never matches: no allowed month has day-of-month 30");
  CHECK(error_of(ScheduleKind::cron, "0 0 31 4,6,9,11 *").code == "invalid_cron");
  // With both day fields restricted the weekday alone can match (OR): valid.
  CHECK(iso(cron("0 0 30 2 MON").next_after(utc("2026-01-05 10:00:00"))) == "2026-02-02 00:00:00");
  // Beyond year 9999 there is nothing.
  CHECK_FALSE(cron("* * * * *").next_after(utc("9999-12-31 23:59:00")).has_value());
  CHECK_FALSE(cron("* * * * *").next_after(Instant::max()).has_value());
  CHECK(cron("0 0 1 1 *").next_after(Instant::min()).has_value());
}

TEST_CASE("cron: each bad expression has a clear error") {
  struct Case {
    const char* expr;
    const char* message;
  };
  const Case cases[] = {
      {"0 25 * * *", "cron field 2 (hour) \"25\" is out of range 0-23"},
      {"60 * * * *", "cron field 1 (minute) \"60\" is out of range 0-59"},
      {"* * 0 * *", "cron field 3 (day-of-month) \"0\" is out of range 1-31"},
      {"* * 32 * *", "cron field 3 (day-of-month) \"32\" is out of range 1-31"},
      {"* * * 13 *", "cron field 4 (month) \"13\" is out of range 1-12"},
      {"* * * * 8", "cron field 5 (day-of-week) \"8\" is out of range 0-7"},
      {"* * * * 99999999999", "cron field 5 (day-of-week) \"99999999999\" is out of range 0-7"},
      {"* * * FOO *", "cron field 4 (month) \"FOO\" is neither a number 1-12 nor a name jan-dec"},
      {"* * * * MONDAY", "cron field 5 (day-of-week) \"MONDAY\" is neither a number 0-7 nor a name sun-sat"},
      {"x * * * *", "cron field 1 (minute) \"x\" is not a number 0-59"},
      {"0 0 L * *", "cron field 3 (day-of-month) \"L\" is not a number 1-31"},
      {"0 0 ? * MON", "cron field 3 (day-of-month) \"?\" is not a number 1-31"},
      {"0 0 * * MON#2", "cron field 5 (day-of-week) \"MON#2\" is neither a number 0-7 nor a name sun-sat"},
      {"* JAN * * *", "cron field 2 (hour) \"JAN\" is not a number 0-23"},
      {"*/0 * * * *", "cron field 1 (minute) \"*/0\" has a step that is not a number 1-59"},
      {"*/x * * * *", "cron field 1 (minute) \"*/x\" has a step that is not a number 1-59"},
      {"5-1 * * * *", "cron field 1 (minute) \"5-1\" is a descending range"},
      {"1,,2 * * * *", "cron field 1 (minute) \"1,,2\" has an empty list item"},
      {"1, * * * *", "cron field 1 (minute) \"1,\" has an empty list item"},
      {"* * * *",
       "cron expression \"* * * *\" has 4 fields; expected 5 (minute hour day-of-month month day-of-week) or an alias "
       "such as @daily"},
      {"0 * * * * *",
       "cron expression \"0 * * * * *\" has 6 fields; expected 5 (minute hour day-of-month month day-of-week) or an "
       "alias such as @daily"},
      {"",
       "cron expression \"\" has 0 fields; expected 5 (minute hour day-of-month month day-of-week) or an alias such as "
       "@daily"},
      {"@reboot", "cron alias \"@reboot\" is not one of @yearly @annually @monthly @weekly @daily @midnight @hourly"},
  };
  for (const auto& c : cases) {
    const std::string expr = c.expr;
    CAPTURE(expr);
    auto e = error_of(ScheduleKind::cron, c.expr);
    CHECK(e.code == "invalid_cron");
    CHECK(e.message == c.message);
  }
}

// America/New_York 2026: spring forward Sun Mar 8 02:00 EST -> 03:00 EDT (07:00Z);
// fall back Sun Nov 1 02:00 EDT -> 01:00 EST (06:00Z).
TEST_CASE("cron DST: America/New_York, spring forward") {
  const auto ny = "America/New_York";
  // 02:30 does not exist on Mar 8: it runs once at the transition (03:00 EDT).
  CHECK(next_n(cron("30 2 * * *", ny), utc("2026-03-06 12:00:00"), 3) ==
        V{"2026-03-07 07:30:00", "2026-03-08 07:00:00", "2026-03-09 06:30:00"});
  // Every 30 minutes: 01:30 EST, then 02:00 and 02:30 collapse into 03:00 EDT, then 03:30 EDT.
  CHECK(next_n(cron("*/30 * * * *", ny), utc("2026-03-08 06:00:00"), 3) ==
        V{"2026-03-08 06:30:00", "2026-03-08 07:00:00", "2026-03-08 07:30:00"});
  // Local 9:00 every day: 14:00Z in winter, 13:00Z in summer.
  CHECK(next_n(cron("0 9 * * *", ny), utc("2026-03-07 00:00:00"), 2) ==
        V{"2026-03-07 14:00:00", "2026-03-08 13:00:00"});
}

TEST_CASE("cron DST: America/New_York, fall back") {
  const auto ny = "America/New_York";
  // 01:30 happens twice on Nov 1: it runs at the first (EDT, 05:30Z) only.
  CHECK(next_n(cron("30 1 * * *", ny), utc("2026-10-31 12:00:00"), 2) ==
        V{"2026-11-01 05:30:00", "2026-11-02 06:30:00"});
  // Every 30 minutes: the repeated hour (01:00 and 01:30 EST) is not run again.
  CHECK(next_n(cron("*/30 * * * *", ny), utc("2026-11-01 05:00:00"), 3) ==
        V{"2026-11-01 05:30:00", "2026-11-01 07:00:00", "2026-11-01 07:30:00"});
  // Asked from inside the second 01:xx hour, the next run is 02:00 EST.
  CHECK(iso(cron("*/30 * * * *", ny).next_after(utc("2026-11-01 06:10:00"))) == "2026-11-01 07:00:00");
  CHECK(iso(cron("0 * * * *", ny).next_after(utc("2026-11-01 05:00:00"))) == "2026-11-01 07:00:00");
}

// Europe/Bucharest 2026: spring forward Sun Mar 29 03:00 EET -> 04:00 EEST (01:00Z);
// fall back Sun Oct 25 04:00 EEST -> 03:00 EET (01:00Z).
TEST_CASE("cron DST: Europe/Bucharest, both directions") {
  const auto b = "Europe/Bucharest";
  // 03:30 missing on Mar 29 -> 04:00 EEST (01:00Z); then 03:30 EEST = 00:30Z.
  CHECK(next_n(cron("30 3 * * *", b), utc("2026-03-28 00:00:00"), 3) ==
        V{"2026-03-28 01:30:00", "2026-03-29 01:00:00", "2026-03-30 00:30:00"});
  // 03:30 twice on Oct 25 -> first (EEST, 00:30Z) only; Oct 26 03:30 EET = 01:30Z.
  CHECK(next_n(cron("30 3 * * *", b), utc("2026-10-24 12:00:00"), 2) ==
        V{"2026-10-25 00:30:00", "2026-10-26 01:30:00"});
  // Hourly across the fall back: 03:00 EEST (00:00Z), then 04:00 EET (02:00Z).
  CHECK(next_n(cron("@hourly", b), utc("2026-10-24 23:30:00"), 2) == V{"2026-10-25 00:00:00", "2026-10-25 02:00:00"});
  // Hourly across the spring forward: 02:00 EET (00:00Z), 03:00 missing -> 04:00 EEST (01:00Z), 05:00 EEST.
  CHECK(next_n(cron("@hourly", b), utc("2026-03-28 23:30:00"), 3) ==
        V{"2026-03-29 00:00:00", "2026-03-29 01:00:00", "2026-03-29 02:00:00"});
}

TEST_CASE("time zones: default UTC, unknown names, no paths") {
  auto s = cron("0 0 * * *", "");
  CHECK(s.timezone() == "UTC");
  CHECK(s.effective_timezone() == "UTC");
  CHECK(cron("0 0 * * *", "Europe/Bucharest").timezone() == "Europe/Bucharest");
  for (const std::string bad :
       {"Mars/Olympus", "Europe", "europe/bucharest ", "localtime", "../../etc/passwd", "/usr/share/zoneinfo/UTC",
        "Europe/../UTC", "right/UTC", "Fixed/UTC+05:00", "Etc//UTC"}) {
    CAPTURE(bad);
    auto e = error_of(ScheduleKind::cron, "* * * * *", bad);
    CHECK(e.code == "unknown_timezone");
    CHECK(e.message.find("timezone \"") == 0);
  }
  CHECK(error_of(ScheduleKind::once, "2026-01-01T00:00:00", "Mars/Olympus").message ==
        "timezone \"Mars/Olympus\" is not a known IANA time zone");
  CHECK(error_of(ScheduleKind::cron, "* * * * *", std::string(300, 'A')).code == "unknown_timezone");
}

TEST_CASE("rrule: daily, weekly, monthly with BYDAY and BYSETPOS") {
  SUBCASE("daily at 09:00 local across spring forward in New York") {
    auto s = rrule("DTSTART;TZID=America/New_York:20260306T090000\nRRULE:FREQ=DAILY", "UTC");
    CHECK(s.effective_timezone() == "America/New_York");
    CHECK(s.timezone() == "UTC");
    CHECK(next_n(s, utc("2026-03-06 00:00:00"), 4) ==
          V{"2026-03-06 14:00:00", "2026-03-07 14:00:00", "2026-03-08 13:00:00", "2026-03-09 13:00:00"});
  }
  SUBCASE("without DTSTART the anchor is DTSTART (its minute and second too, as RFC 5545 says)") {
    CHECK(next_n(rrule("FREQ=DAILY;BYHOUR=9"), kAnchor, 2) == V{"2026-01-05 09:37:12", "2026-01-06 09:37:12"});
    CHECK(next_n(rrule("FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "Europe/Bucharest"), kAnchor, 2) ==
          V{"2026-01-06 07:00:00", "2026-01-07 07:00:00"});
  }
  SUBCASE("weekly every other week on Monday and Wednesday") {
    auto s = rrule("DTSTART:20260105T090000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE");
    CHECK(next_n(s, utc("2026-01-01 00:00:00"), 5) == V{"2026-01-05 09:00:00", "2026-01-07 09:00:00",
                                                        "2026-01-19 09:00:00", "2026-01-21 09:00:00",
                                                        "2026-02-02 09:00:00"});
    // Far from DTSTART the interval alignment is kept.
    CHECK(next_n(s, utc("2026-03-03 00:00:00"), 2) == V{"2026-03-04 09:00:00", "2026-03-16 09:00:00"});
  }
  SUBCASE("monthly last weekday (BYSETPOS=-1)") {
    auto s = rrule("DTSTART:20260101T170000\nRRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1");
    CHECK(next_n(s, utc("2026-01-15 00:00:00"), 4) ==
          V{"2026-01-30 17:00:00", "2026-02-27 17:00:00", "2026-03-31 17:00:00", "2026-04-30 17:00:00"});
    CHECK(iso(s.next_after(utc("2026-05-20 00:00:00"))) == "2026-05-29 17:00:00");
  }
  SUBCASE("monthly second Tuesday") {
    auto s = rrule("DTSTART:20260101T120000Z\nRRULE:FREQ=MONTHLY;BYDAY=2TU");
    CHECK(s.effective_timezone() == "UTC");
    CHECK(next_n(s, utc("2026-01-01 00:00:00"), 3) ==
          V{"2026-01-13 12:00:00", "2026-02-10 12:00:00", "2026-03-10 12:00:00"});
  }
  SUBCASE("monthly on the 31st skips short months") {
    CHECK(next_n(rrule("DTSTART:20260131T080000\nFREQ=MONTHLY;BYMONTHDAY=31"), utc("2026-01-01 00:00:00"), 3) ==
          V{"2026-01-31 08:00:00", "2026-03-31 08:00:00", "2026-05-31 08:00:00"});
  }
  SUBCASE("yearly on February 29th") {
    CHECK(next_n(rrule("DTSTART:20240229T000000\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"),
                 utc("2024-03-01 00:00:00"), 2) == V{"2028-02-29 00:00:00", "2032-02-29 00:00:00"});
  }
  SUBCASE("minutely from long ago answers quickly and correctly") {
    auto s = rrule("DTSTART:20000101T000000\nRRULE:FREQ=MINUTELY;INTERVAL=7");
    // 2026-01-05 10:00 is 13884600 minutes after 2000-01-01; the next multiple of 7 is 13884606.
    CHECK(iso(s.next_after(utc("2026-01-05 10:00:00"))) == "2026-01-05 10:06:00");
  }
  SUBCASE("CRLF lines and lower-case property names") {
    CHECK(next_n(rrule("dtstart:20260105T090000\r\nrrule:FREQ=DAILY;COUNT=2\r\n"), utc("2026-01-01 00:00:00"), 3) ==
          V{"2026-01-05 09:00:00", "2026-01-06 09:00:00", "none"});
  }
  SUBCASE("DTSTART as a DATE starts at midnight") {
    CHECK(next_n(rrule("DTSTART;VALUE=DATE:20260110\nRRULE:FREQ=WEEKLY"), utc("2026-01-01 00:00:00"), 2) ==
          V{"2026-01-10 00:00:00", "2026-01-17 00:00:00"});
  }
}

TEST_CASE("rrule: COUNT and UNTIL end the schedule") {
  auto counted = rrule("DTSTART:20260105T090000\nRRULE:FREQ=DAILY;COUNT=3");
  CHECK(next_n(counted, utc("2026-01-01 00:00:00"), 4) ==
        V{"2026-01-05 09:00:00", "2026-01-06 09:00:00", "2026-01-07 09:00:00", "none"});
  CHECK_FALSE(counted.next_after(utc("2030-01-01 00:00:00")).has_value());
  // UNTIL is inclusive; a UTC UNTIL is an instant even though the rule runs in Bucharest time.
  auto until = rrule("DTSTART;TZID=Europe/Bucharest:20260105T090000\nRRULE:FREQ=DAILY;UNTIL=20260107T070000Z");
  CHECK(next_n(until, utc("2026-01-01 00:00:00"), 4) ==
        V{"2026-01-05 07:00:00", "2026-01-06 07:00:00", "2026-01-07 07:00:00", "none"});
  auto until_early = rrule("DTSTART;TZID=Europe/Bucharest:20260105T090000\nRRULE:FREQ=DAILY;UNTIL=20260107T065959Z");
  CHECK(next_n(until_early, utc("2026-01-01 00:00:00"), 3) == V{"2026-01-05 07:00:00", "2026-01-06 07:00:00", "none"});
  // A DATE UNTIL includes that whole day.
  auto until_date = rrule("DTSTART:20260105T230000\nRRULE:FREQ=DAILY;UNTIL=20260106");
  CHECK(next_n(until_date, utc("2026-01-01 00:00:00"), 3) == V{"2026-01-05 23:00:00", "2026-01-06 23:00:00", "none"});
  // COUNT counts civil occurrences across the fall back (01:30 runs at its first occurrence).
  auto hourly = rrule("DTSTART;TZID=America/New_York:20261101T003000\nRRULE:FREQ=HOURLY;COUNT=4");
  CHECK(next_n(hourly, utc("2026-10-31 00:00:00"), 5) ==
        V{"2026-11-01 04:30:00", "2026-11-01 05:30:00", "2026-11-01 07:30:00", "2026-11-01 08:30:00", "none"});
}

TEST_CASE("rrule: COUNT rules answer the same in any order of questions") {
  // The walk of a COUNT rule continues from the previous call; going back restarts it.
  const auto s = rrule("DTSTART:20260105T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO,FR;COUNT=40");
  const auto fresh = [] { return rrule("DTSTART:20260105T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO,FR;COUNT=40"); };
  const Instant probes[] = {utc("2026-03-01 00:00:00"), utc("2026-01-01 00:00:00"), utc("2026-03-02 09:00:00"),
                            utc("2026-03-02 08:59:59"), utc("2026-06-30 00:00:00"), utc("2026-01-09 09:00:00"),
                            utc("2026-05-22 09:00:00"), utc("2026-05-21 00:00:00"), utc("2030-01-01 00:00:00")};
  for (Instant p : probes) {
    CAPTURE(iso(p));
    CHECK(iso(s.next_after(p)) == iso(fresh().next_after(p)));
  }
  CHECK(iso(s.next_after(utc("2026-05-21 00:00:00"))) == "2026-05-22 09:00:00");  // the 40th
  CHECK(iso(s.next_after(utc("2026-05-22 09:00:00"))) == "none");
  // Last day of February via a negative BYMONTHDAY.
  CHECK(next_n(rrule("DTSTART:20270101T000000\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1"), utc("2027-01-01 00:00:00"),
               2) == V{"2027-02-28 00:00:00", "2028-02-29 00:00:00"});
}

TEST_CASE("rrule DST: gap and repeat in Bucharest and New York") {
  // 03:30 daily in Bucharest: missing on Mar 29 -> 04:00 EEST (01:00Z); twice on Oct 25 -> first (00:30Z).
  auto b = rrule("DTSTART;TZID=Europe/Bucharest:20260328T033000\nRRULE:FREQ=DAILY");
  CHECK(next_n(b, utc("2026-03-27 00:00:00"), 3) ==
        V{"2026-03-28 01:30:00", "2026-03-29 01:00:00", "2026-03-30 00:30:00"});
  CHECK(next_n(b, utc("2026-10-24 12:00:00"), 2) == V{"2026-10-25 00:30:00", "2026-10-26 01:30:00"});
  // Floating DTSTART in the task's zone: 02:15 in New York on Mar 8 -> 03:00 EDT (07:00Z).
  auto ny = rrule("DTSTART:20260307T021500\nRRULE:FREQ=DAILY", "America/New_York");
  CHECK(next_n(ny, utc("2026-03-07 00:00:00"), 3) ==
        V{"2026-03-07 07:15:00", "2026-03-08 07:00:00", "2026-03-09 06:15:00"});
  // Every 20 minutes across the New York fall back: the repeated 01:xx hour runs once.
  auto every20 = rrule("DTSTART;TZID=America/New_York:20261101T012000\nRRULE:FREQ=MINUTELY;INTERVAL=20");
  CHECK(next_n(every20, utc("2026-11-01 05:00:00"), 4) ==
        V{"2026-11-01 05:20:00", "2026-11-01 05:40:00", "2026-11-01 07:00:00", "2026-11-01 07:20:00"});
}

TEST_CASE("rrule: each bad expression has a clear error") {
  struct Case {
    const char* expr;
    const char* code;
    const char* message;
  };
  const Case cases[] = {
      {"FREQ=BOGUS", "invalid_rrule",
       "RRULE part \"FREQ=BOGUS\" is not a frequency SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY"},
      {"FREQ=DAILY;BYHOUR=99", "invalid_rrule", "RRULE part \"BYHOUR=99\" is invalid"},
      {"RRULE:FREQ=DAILY;BYDAY=MO,XX", "invalid_rrule", "RRULE part \"BYDAY=MO,XX\" is invalid"},
      {"FREQ=DAILY;FOO=1", "invalid_rrule", "RRULE part \"FOO=1\" is invalid"},
      {"FREQ=DAILY;INTERVAL=0", "invalid_rrule", "RRULE part \"INTERVAL=0\" is invalid"},
      {"BYHOUR=9", "invalid_rrule", "RRULE \"BYHOUR=9\" has no FREQ=SECONDLY..YEARLY part"},
      {"FREQ=DAILY;COUNT=2;UNTIL=20260101T000000Z", "invalid_rrule",
       "RRULE has both COUNT and UNTIL (RFC 5545 allows one of them)"},
      {"FREQ=MINUTELY;BYMONTH=12", "invalid_rrule",
       "RRULE FREQ=MINUTELY with BYMONTH is not supported (it would be expanded one minute at a time); use "
       "FREQ=DAILY or coarser with BYHOUR/BYMINUTE/BYSECOND"},
      {"FREQ=SECONDLY;BYMONTHDAY=29", "invalid_rrule",
       "RRULE FREQ=SECONDLY with BYMONTHDAY is not supported (it would be expanded one second at a time); use "
       "FREQ=DAILY or coarser with BYHOUR/BYMINUTE/BYSECOND"},
      {"FREQ=HOURLY;BYYEARDAY=60", "invalid_rrule",
       "RRULE FREQ=HOURLY with BYYEARDAY is not supported (it would be expanded one hour at a time); use "
       "FREQ=DAILY or coarser with BYHOUR/BYMINUTE/BYSECOND"},
      {"FREQ=DAILY;COUNT=0", "invalid_rrule", "RRULE part \"COUNT=0\" is invalid"},
      {"FREQ=DAILY;COUNT=1000000", "invalid_rrule", "RRULE COUNT 1000000 is above the supported 100000"},
      {"DTSTART:20260101T000000\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "invalid_rrule",
       "RRULE never matches: no allowed month has BYMONTHDAY=30"},
      {"FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31,-31", "invalid_rrule",
       "RRULE never matches: no allowed month has BYMONTHDAY=31,-31"},
      {"DTSTART:2026-01-01\nRRULE:FREQ=DAILY", "invalid_rrule",
       "DTSTART value \"2026-01-01\" is not a date-time like 20260308T090000, 20260308T090000Z or (VALUE=DATE) "
       "20260308"},
      {"DTSTART:20260230T000000\nRRULE:FREQ=DAILY", "invalid_rrule",
       "DTSTART value \"20260230T000000\" is not a date-time like 20260308T090000, 20260308T090000Z or (VALUE=DATE) "
       "20260308"},
      {"DTSTART;TZID=Europe/Bucharest:20260101T000000Z\nRRULE:FREQ=DAILY", "invalid_rrule",
       "DTSTART value \"20260101T000000Z\" is not a date-time like 20260308T090000, 20260308T090000Z or (VALUE=DATE) "
       "20260308; with TZID it must not end in Z"},
      {"DTSTART;TZID=Mars/Base:20260101T000000\nRRULE:FREQ=DAILY", "unknown_timezone",
       "DTSTART TZID \"Mars/Base\" is not a known IANA time zone"},
      {"DTSTART;X-FOO=1:20260101T000000\nRRULE:FREQ=DAILY", "invalid_rrule",
       "DTSTART parameter \"X-FOO=1\" is not supported (TZID=, VALUE=DATE)"},
      {"DTSTART 20260101T000000\nRRULE:FREQ=DAILY", "invalid_rrule",
       "DTSTART line \"DTSTART 20260101T000000\" has no ':' before its value"},
      {"DTSTART:20260101T000000\nDTSTART:20260102T000000\nRRULE:FREQ=DAILY", "invalid_rrule",
       "RRULE expression has more than one DTSTART line"},
      {"RRULE:FREQ=DAILY\nEXDATE:20260102T000000", "invalid_rrule",
       "RRULE expression has an unexpected line \"EXDATE:20260102T000000\"; only one DTSTART and one RRULE line are "
       "accepted"},
      {"DTSTART:20260101T000000", "invalid_rrule", "RRULE expression has no rule (e.g. FREQ=DAILY;BYHOUR=9)"},
      {"", "invalid_rrule", "RRULE expression has no rule (e.g. FREQ=DAILY;BYHOUR=9)"},
      {"DTSTART:30000101T000000\nRRULE:FREQ=DAILY", "invalid_rrule", "RRULE DTSTART year 3000 is outside 0001-2580"},
      {"FREQ=DAILY;BYHOUR=\x01", "invalid_rrule", "RRULE \"FREQ=DAILY;BYHOUR=\\x01\" has a control or non-ASCII byte"},
  };
  for (const auto& c : cases) {
    const std::string expr = c.expr;
    CAPTURE(expr);
    auto e = error_of(ScheduleKind::rrule, c.expr);
    CHECK(e.code == c.code);
    CHECK(e.message == c.message);
  }
}

TEST_CASE("once: RFC 3339 instants and local times") {
  const Instant before = utc("2026-01-01 00:00:00");
  CHECK(iso(compile(ScheduleKind::once, "2026-06-01T12:00:00Z").next_after(before)) == "2026-06-01 12:00:00");
  CHECK(iso(compile(ScheduleKind::once, "2026-06-01t12:00:00z").next_after(before)) == "2026-06-01 12:00:00");
  CHECK(iso(compile(ScheduleKind::once, "2026-06-01T12:00:00+03:00").next_after(before)) == "2026-06-01 09:00:00");
  CHECK(iso(compile(ScheduleKind::once, "2026-06-01 12:00:00-04:30").next_after(before)) == "2026-06-01 16:30:00");
  CHECK(iso(compile(ScheduleKind::once, "2026-06-01T12:00:00.999Z").next_after(before)) == "2026-06-01 12:00:00");
  // An explicit offset wins over the zone.
  CHECK(iso(compile(ScheduleKind::once, "2026-06-01T12:00:00Z", "Europe/Bucharest").next_after(before)) ==
        "2026-06-01 12:00:00");
  // No offset: local time in the zone (EEST = UTC+3 in June).
  CHECK(iso(compile(ScheduleKind::once, "2026-06-01T12:00:00", "Europe/Bucharest").next_after(before)) ==
        "2026-06-01 09:00:00");
  // DST: a local time in the gap runs at the transition; a repeated one at its first occurrence.
  CHECK(iso(compile(ScheduleKind::once, "2026-03-08T02:30:00", "America/New_York").next_after(before)) ==
        "2026-03-08 07:00:00");
  CHECK(iso(compile(ScheduleKind::once, "2026-11-01T01:30:00", "America/New_York").next_after(before)) ==
        "2026-11-01 05:30:00");
  CHECK(iso(compile(ScheduleKind::once, "2026-10-25T03:30:00", "Europe/Bucharest").next_after(before)) ==
        "2026-10-25 00:30:00");
  // Leap day.
  CHECK(iso(compile(ScheduleKind::once, "2028-02-29T00:00:00Z").next_after(before)) == "2028-02-29 00:00:00");
}

TEST_CASE("once: past and future, strictly after") {
  auto s = compile(ScheduleKind::once, "2026-06-01T12:00:00Z");
  CHECK(s.next_after(utc("2026-06-01 11:59:59")).has_value());
  CHECK_FALSE(s.next_after(utc("2026-06-01 12:00:00")).has_value());
  CHECK_FALSE(s.next_after(utc("2027-01-01 00:00:00")).has_value());
  // A past time compiles (the caller decides what a past once means) and never comes.
  auto past = compile(ScheduleKind::once, "2001-01-01T00:00:00Z");
  CHECK_FALSE(past.next_after(kAnchor).has_value());
}

TEST_CASE("once: each bad timestamp has a clear error") {
  struct Case {
    const char* expr;
    const char* message;
  };
  const Case cases[] = {
      {"tomorrow", "once timestamp \"tomorrow\" is not an RFC 3339 date-time like 2026-03-08T09:30:00Z"},
      {"2026-06-01", "once timestamp \"2026-06-01\" is not an RFC 3339 date-time like 2026-03-08T09:30:00Z"},
      {"2026/06/01T12:00:00Z",
       "once timestamp \"2026/06/01T12:00:00Z\" is not an RFC 3339 date-time like 2026-03-08T09:30:00Z"},
      {"2026-13-01T12:00:00Z", "once timestamp \"2026-13-01T12:00:00Z\" has month 13 (not 1-12)"},
      {"2026-02-29T12:00:00Z", "once timestamp \"2026-02-29T12:00:00Z\" has day 29 (not in 2026-02)"},
      {"2026-04-31T12:00:00Z", "once timestamp \"2026-04-31T12:00:00Z\" has day 31 (not in 2026-04)"},
      {"2026-06-01T24:00:00Z", "once timestamp \"2026-06-01T24:00:00Z\" has hour 24 (not 0-23)"},
      {"2026-06-01T12:60:00Z", "once timestamp \"2026-06-01T12:60:00Z\" has minute 60 (not 0-59)"},
      {"2026-06-01T12:00:60Z",
       "once timestamp \"2026-06-01T12:00:60Z\" has second 60 (not 0-59; leap seconds are not supported)"},
      {"2026-06-01T12:00:00.Z", "once timestamp \"2026-06-01T12:00:00.Z\" has a '.' without fraction digits"},
      {"2026-06-01T12:00:00+25:00",
       "once timestamp \"2026-06-01T12:00:00+25:00\" has offset \"+25:00\"; expected Z, +HH:MM or -HH:MM, or none for "
       "local time"},
      {"2026-06-01T12:00:00 UTC",
       "once timestamp \"2026-06-01T12:00:00 UTC\" has offset \" UTC\"; expected Z, +HH:MM or -HH:MM, or none for "
       "local time"},
  };
  for (const auto& c : cases) {
    const std::string expr = c.expr;
    CAPTURE(expr);
    auto e = error_of(ScheduleKind::once, c.expr);
    CHECK(e.code == "invalid_once");
    CHECK(e.message == c.message);
  }
}

TEST_CASE("event: topic patterns") {
  auto orders = compile(ScheduleKind::event, "events_demo.order.*");
  CHECK(orders.matches_topic("events_demo.order.created"));
  CHECK(orders.matches_topic("events_demo.order.paid.late"));
  CHECK_FALSE(orders.matches_topic("events_demo.orders"));
  CHECK_FALSE(orders.matches_topic("other.order.created"));
  CHECK_FALSE(orders.next_after(kAnchor).has_value());
  auto exact = compile(ScheduleKind::event, "a.b");
  CHECK(exact.matches_topic("a.b"));
  CHECK_FALSE(exact.matches_topic("a.b.c"));
  CHECK(compile(ScheduleKind::event, "*").matches_topic("anything.at.all"));
  // Other kinds never match topics.
  CHECK_FALSE(cron("* * * * *").matches_topic("a.b"));
  for (const std::string bad : {"", "a.*.b", "a b", "a.**", "bad/topic"}) {
    CAPTURE(bad);
    auto e = error_of(ScheduleKind::event, bad);
    CHECK(e.code == "invalid_event_pattern");
    CHECK(e.message.find("event pattern \"") == 0);
  }
}

TEST_CASE("manual: no expression, never due") {
  auto s = compile(ScheduleKind::manual, "");
  CHECK_FALSE(s.next_after(kAnchor).has_value());
  CHECK(s.kind() == ScheduleKind::manual);
  CHECK(compile(ScheduleKind::manual, "  ").expr().empty());
  auto e = error_of(ScheduleKind::manual, "0 * * * *");
  CHECK(e.code == "invalid_schedule");
  CHECK(e.message == "manual schedule takes no expression, got \"0 * * * *\"");
}

TEST_CASE("limits: over-long expressions, accessors") {
  auto e = error_of(ScheduleKind::cron, std::string(2000, '*'));
  CHECK(e.code == "invalid_schedule");
  CHECK(e.message == "cron schedule expression is 2000 bytes; the limit is 1024");
  auto s = cron("  */5 * * * *  ", "Europe/Bucharest");
  CHECK(s.kind() == ScheduleKind::cron);
  CHECK(s.expr() == "*/5 * * * *");
  CHECK(s.timezone() == "Europe/Bucharest");
}

TEST_CASE("schedules are shared read-only across threads") {
  const auto s = rrule("DTSTART;TZID=Europe/Bucharest:20260101T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO,TH");
  const auto c = cron("*/7 9-17 * * MON-FRI", "America/New_York");
  const auto expected_r = next_n(s, kAnchor, 50);
  const auto expected_c = next_n(c, kAnchor, 50);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      int good = 0;
      for (int k = 0; k < 20; ++k)
        good += (next_n(s, kAnchor, 50) == expected_r && next_n(c, kAnchor, 50) == expected_c);
      ok[static_cast<std::size_t>(i)] = good;
    });
  }
  for (auto& t : threads) t.join();
  for (int good : ok) CHECK(good == 20);
}

// Skipping ahead (libical set_start for INTERVAL=1, DTSTART moved by whole
// intervals otherwise) must give exactly the occurrences of a plain walk from
// DTSTART. The same rule with COUNT is walked from DTSTART with no skipping, so
// it serves as the reference.
TEST_CASE("rrule: skipping ahead gives the same occurrences as walking from DTSTART") {
  const char* rules[] = {
      "DTSTART:20260101T000000\nRRULE:FREQ=MINUTELY;INTERVAL=7",
      "DTSTART;TZID=America/New_York:20260301T013000\nRRULE:FREQ=HOURLY;INTERVAL=5",
      "DTSTART;TZID=Europe/Bucharest:20260101T033000\nRRULE:FREQ=DAILY;INTERVAL=3",
      "DTSTART:20260101T090000\nRRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,SA",
      "DTSTART:20260131T090000\nRRULE:FREQ=MONTHLY;INTERVAL=2",
      "DTSTART:20260101T090000\nRRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
      "DTSTART;TZID=America/New_York:20261001T000000\nRRULE:FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE=0,30;BYSECOND=0",
      "DTSTART;TZID=America/New_York:20260220T000000\nRRULE:FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE=0,30;BYSECOND=0",
  };
  for (const std::string text : rules) {
    CAPTURE(text);
    const auto fast = rrule(text);
    const auto reference = rrule(text + ";COUNT=300");
    std::vector<Instant> occ;
    std::optional<Instant> t = utc("2025-12-01 00:00:00");
    while ((t = reference.next_after(*t))) occ.push_back(*t);
    REQUIRE(occ.size() >= 250);  // a few collapse in DST gaps
    CHECK(fast.next_after(utc("2025-12-01 00:00:00")) == occ.front());
    for (std::size_t i = 0; i + 1 < occ.size(); ++i) {
      CAPTURE(iso(occ[i]));
      CHECK(fast.next_after(occ[i]) == occ[i + 1]);
      CHECK(fast.next_after(occ[i + 1] - std::chrono::seconds(1)) == occ[i + 1]);
      CHECK(fast.next_after(occ[i] + (occ[i + 1] - occ[i]) / 2) == occ[i + 1]);
    }
  }
}

// The cron matcher and libical are independent engines; over two years that
// include both DST transitions of both zones they must agree run for run.
TEST_CASE("cron agrees with the equivalent RRULE across DST in both zones") {
  struct Pair {
    const char* cron;
    const char* rule;
  };
  const Pair pairs[] = {
      {"*/30 * * * *", "FREQ=HOURLY;BYMINUTE=0,30;BYSECOND=0"},
      {"0 9 * * MON-FRI", "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0"},
      {"15 1-4 * * *", "FREQ=DAILY;BYHOUR=1,2,3,4;BYMINUTE=15;BYSECOND=0"},
      {"5/20 1-3 * JAN,MAR,OCT,NOV SUN",
       "FREQ=DAILY;BYMONTH=1,3,10,11;BYDAY=SU;BYHOUR=1,2,3;BYMINUTE=5,25,45;BYSECOND=0"},
      {"0 0 29 2 *", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=0;BYMINUTE=0;BYSECOND=0"},
  };
  for (const char* zone : {"America/New_York", "Europe/Bucharest"}) {
    for (const auto& p : pairs) {
      const std::string zone_name = zone, cron_text = p.cron;
      CAPTURE(zone_name);
      CAPTURE(cron_text);
      const auto c = cron(p.cron, zone);
      const auto r = rrule(std::string("DTSTART;TZID=") + zone + ":20260101T000000\nRRULE:" + p.rule, "UTC");
      int n = 0;
      // From New Year, and from shortly before each zone's 2026 transitions.
      for (const char* from : {"2026-01-01 06:00:00", "2026-03-01 00:00:00", "2026-10-20 00:00:00"}) {
        const std::string start = from;
        CAPTURE(start);
        std::optional<Instant> a = utc(start), b = a;
        for (int i = 0; i < 1500 && *a < utc("2029-01-01 00:00:00"); ++i, ++n) {
          a = c.next_after(*a);
          b = r.next_after(*b);
          REQUIRE(a.has_value());
          REQUIRE(iso(a) == iso(b));
        }
      }
      CHECK(n > 0);
    }
  }
}

// Garbage in never crashes or hangs: each compile gives a schedule or an error of
// its kind, and compiled ones answer next_after. Deterministic (fixed seed).
TEST_CASE("random expressions give a schedule or a clear error") {
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  auto rnd = [&](std::size_t n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::size_t>((state >> 33) % n);
  };
  // Valid seeds, mutated at 1-3 random places.
  const std::vector<std::string> cron_seeds = {"*/15 9-17 * * MON-FRI", "0 0 29 2 *", "5/20 1-3 * JAN,NOV SUN",
                                               "@daily", "30 2 13 * FRI"};
  const std::vector<std::string> once_seeds = {"2026-03-08T02:30:00", "2026-11-01T01:30:00.5-05:00",
                                               "2028-02-29 23:59:59Z"};
  const std::vector<std::string> rule_seeds = {
      "FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "FREQ=MONTHLY;BYDAY=-1FR;BYSETPOS=1;COUNT=5",
      "DTSTART;TZID=Europe/Bucharest:20260329T033000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SU"};
  struct Kind {
    ScheduleKind kind;
    const char* code;
    const std::vector<std::string>* seeds;
    const char* alphabet;
    int rounds;
  };
  for (const Kind k : {Kind{ScheduleKind::cron, "invalid_cron", &cron_seeds, "0123456789*/-, JANMONsun@?L#", 1500},
                       Kind{ScheduleKind::once, "invalid_once", &once_seeds, "0123456789-:T.Z+ ", 1500},
                       Kind{ScheduleKind::rrule, "invalid_rrule", &rule_seeds, "0123456789;=,-+:ZTX\n", 300}}) {
    int compiled = 0;
    const std::string alphabet = k.alphabet;
    for (int i = 0; i < k.rounds; ++i) {
      std::string expr = (*k.seeds)[rnd(k.seeds->size())];
      for (int m = 0; m < 1 + static_cast<int>(rnd(3)); ++m) expr[rnd(expr.size())] = alphabet[rnd(alphabet.size())];
      CAPTURE(expr);
      auto s = Schedule::compile(k.kind, expr, "America/New_York", kAnchor);
      if (s.ok()) {
        ++compiled;
        (void)s->next_after(kAnchor);
        (void)s->next_after(utc("2026-11-01 05:59:59"));
      } else {
        CHECK_MESSAGE((s.error().code == k.code || s.error().code == "unknown_timezone"), s.error().message);
        CHECK_FALSE(s.error().message.empty());
      }
    }
    MESSAGE(ordinaut::scheduler::to_string(k.kind), ": ", compiled, " of ", k.rounds, " mutated expressions compiled");
    CHECK(compiled > 0);
  }
}
