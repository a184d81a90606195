// Schedules: cron (own matcher over civil time), RRULE (libical, floating
// civil time), once (RFC 3339), event patterns; civil times mapped to instants
// with cctz under the DST policy documented in schedule.hpp.
#include "schedule.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <vector>

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>
#include <fmt/format.h>
#include <libical/ical.h>

#include "ordinaut/events.hpp"

namespace ordinaut::scheduler {
namespace {

constexpr std::size_t kMaxExprBytes = 1024;
constexpr std::size_t kMaxZoneBytes = 128;
constexpr int kMaxRRuleCount = 100000;
// libical refuses to expand past this year (its MAX_TIME_T_YEAR); we stop earlier.
constexpr int kMaxRRuleYear = 2582;
// Civil years a cron or once may reach; next_after answers nullopt beyond.
constexpr int kMaxYear = 9999;
// Upper bound of libical iterations per next_after call (COUNT rules iterate from
// DTSTART; others jump close to `after` first).
constexpr int kMaxRRuleSteps = 250000;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses a run of digits (at most 9, so no overflow); nullopt otherwise.
std::optional<int> parse_int(std::string_view s) {
  if (!all_digits(s) || s.size() > 9) return std::nullopt;
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// Printable form of user input inside messages: control bytes escaped, long input cut.
std::string shown(std::string_view s) {
  std::string out = "\"";
  std::size_t n = 0;
  for (char c : s) {
    if (++n > 120) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

Instant to_instant(cctz::time_point<cctz::seconds> tp) { return Instant(tp.time_since_epoch()); }

// The DST policy: skipped civil times run at the transition, repeated ones at
// their first occurrence. Monotonic in `cs`.
Instant map_civil(const cctz::civil_second& cs, const cctz::time_zone& tz) {
  const auto cl = tz.lookup(cs);
  return to_instant(cl.kind == cctz::time_zone::civil_lookup::SKIPPED ? cl.trans : cl.pre);
}

// The bounds within which we convert instants to civil time (years 0000-9999).
const Instant kMinInstant = to_instant(cctz::convert(cctz::civil_second(0, 1, 1), cctz::utc_time_zone()));
const Instant kMaxInstant =
    to_instant(cctz::convert(cctz::civil_second(kMaxYear, 12, 31, 23, 59, 59), cctz::utc_time_zone()));

cctz::civil_second civil_of(Instant t, const cctz::time_zone& tz) {
  return cctz::convert(std::max(t, kMinInstant), tz);
}

// ---------------------------------------------------------------- time zones

// IANA names only: components of [A-Za-z0-9_+-] starting with a letter, joined
// by '/'. Refuses paths ("/etc/..", ".."), which cctz would otherwise open.
bool plausible_zone_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxZoneBytes) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(start, slash - start);
    if (part.empty() || !std::isalpha(static_cast<unsigned char>(part.front()))) return false;
    for (char c : part) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '+' && c != '-') return false;
    }
    start = slash + 1;
  }
  return name != "localtime" && !istarts_with(name, "right/");
}

Result<cctz::time_zone> load_zone(std::string_view name, std::string_view field) {
  if (name == "UTC") return cctz::utc_time_zone();
  auto unknown = [&] {
    return make_error("unknown_timezone", fmt::format("{} {} is not a known IANA time zone", field, shown(name)));
  };
  if (!plausible_zone_name(name)) return unknown();
  // Check the tzdata file first so that cctz never caches lookups of arbitrary names.
  const char* dir = std::getenv("TZDIR");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::path(dir && *dir ? dir : "/usr/share/zoneinfo") / name, ec)) {
    return unknown();
  }
  cctz::time_zone tz;
  if (!cctz::load_time_zone(std::string(name), &tz)) return unknown();
  return tz;
}

// ---------------------------------------------------------------------- cron

struct CronField {
  const char* name;
  int min, max;
  const char* const* names;  // 3-letter names, names[i] is value names_base + i
  int names_base, names_count;
};

constexpr std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 7> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

const std::array<CronField, 5> kCronFields = {{
    {"minute", 0, 59, nullptr, 0, 0},
    {"hour", 0, 23, nullptr, 0, 0},
    {"day-of-month", 1, 31, nullptr, 0, 0},
    {"month", 1, 12, kMonthNames.data(), 1, 12},
    {"day-of-week", 0, 7, kDayNames.data(), 0, 7},
}};

struct CronSpec {
  std::uint64_t minutes = 0;  // bit m: minute m
  std::uint32_t hours = 0;    // bit h
  std::uint32_t mdays = 0;    // bit d (1-31)
  std::uint32_t months = 0;   // bit m (1-12)
  std::uint32_t wdays = 0;    // bit d (0 = Sunday - 6)
  bool mday_star = false, wday_star = false;
};

bool has_bit(std::uint64_t set, int bit) { return ((set >> bit) & 1U) != 0; }

// Smallest set bit >= from, or -1.
int next_bit(std::uint64_t set, int from) {
  if (from >= 64) return -1;
  const std::uint64_t rest = set >> from;
  return rest == 0 ? -1 : from + std::countr_zero(rest);
}

Error cron_error(std::size_t index, const CronField& f, std::string_view token, std::string_view problem) {
  return make_error("invalid_cron", fmt::format("cron field {} ({}) {} {}", index + 1, f.name, shown(token), problem));
}

Result<int> cron_value(std::size_t index, const CronField& f, std::string_view token) {
  if (auto v = parse_int(token)) {
    if (*v < f.min || *v > f.max) {
      return cron_error(index, f, token, fmt::format("is out of range {}-{}", f.min, f.max));
    }
    return *v;
  }
  if (all_digits(token)) return cron_error(index, f, token, fmt::format("is out of range {}-{}", f.min, f.max));
  for (int i = 0; i < f.names_count; ++i) {
    if (iequals(token, f.names[i])) return f.names_base + i;
  }
  if (f.names != nullptr) {
    return cron_error(index, f, token,
                      fmt::format("is neither a number {}-{} nor a name {}-{}", f.min, f.max, f.names[0],
                                  f.names[f.names_count - 1]));
  }
  return cron_error(index, f, token, fmt::format("is not a number {}-{}", f.min, f.max));
}

// One field: "*", "a", "a-b", each optionally "/step", joined by ','.
Result<std::uint64_t> parse_cron_field(std::size_t index, std::string_view text) {
  const CronField& f = kCronFields[index];
  std::uint64_t bits = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view item = text.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) return cron_error(index, f, text, "has an empty list item");
    std::string_view range = item;
    int step = 1;
    bool stepped = false;
    if (auto slash = item.find('/'); slash != std::string_view::npos) {
      range = item.substr(0, slash);
      const std::string_view step_text = item.substr(slash + 1);
      const auto s = parse_int(step_text);
      if (!s || *s < 1 || *s > f.max) {
        return cron_error(index, f, item, fmt::format("has a step that is not a number 1-{}", f.max));
      }
      step = *s;
      stepped = true;
    }
    int lo = 0, hi = 0;
    if (range == "*") {
      lo = f.min;
      hi = f.max;
    } else if (auto dash = range.find('-'); dash != std::string_view::npos) {
      auto a = cron_value(index, f, range.substr(0, dash));
      if (!a) return a.error();
      auto b = cron_value(index, f, range.substr(dash + 1));
      if (!b) return b.error();
      if (*a > *b) return cron_error(index, f, range, "is a descending range");
      lo = *a;
      hi = *b;
    } else {
      auto a = cron_value(index, f, range);
      if (!a) return a.error();
      lo = *a;
      hi = stepped ? f.max : *a;  // "a/n" means a-max/n
    }
    // Day-of-week 7 is Sunday again (bit 0), not an eighth day.
    for (int v = lo; v <= hi; v += step) bits |= std::uint64_t{1} << (f.max == 7 && v == 7 ? 0 : v);
  }
  return bits;
}

int days_in_month(std::int64_t year, int month) {
  return static_cast<int>((cctz::civil_day(cctz::civil_month(year, month) + 1) - 1).day());
}

Result<CronSpec> parse_cron(std::string_view expr) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kAliases = {{
      {"@yearly", "0 0 1 1 *"},
      {"@annually", "0 0 1 1 *"},
      {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  }};
  std::string_view text = expr;
  if (!expr.empty() && expr.front() == '@') {
    auto it = std::find_if(kAliases.begin(), kAliases.end(), [&](const auto& a) { return iequals(a.first, expr); });
    if (it == kAliases.end()) {
      return make_error("invalid_cron",
                        fmt::format("cron alias {} is not one of @yearly @annually @monthly @weekly @daily "
                                    "@midnight @hourly",
                                    shown(expr)));
    }
    text = it->second;
  }
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    std::size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) fields.push_back(text.substr(i, j - i));
    i = j;
  }
  if (fields.size() != 5) {
    return make_error("invalid_cron",
                      fmt::format("cron expression {} has {} fields; expected 5 (minute hour day-of-month month "
                                  "day-of-week) or an alias such as @daily",
                                  shown(expr), fields.size()));
  }
  CronSpec spec;
  std::array<std::uint64_t, 5> sets{};
  for (std::size_t k = 0; k < 5; ++k) {
    auto bits = parse_cron_field(k, fields[k]);
    if (!bits) return bits.error();
    sets[k] = *bits;
  }
  spec.minutes = sets[0];
  spec.hours = static_cast<std::uint32_t>(sets[1]);
  spec.mdays = static_cast<std::uint32_t>(sets[2]);
  spec.months = static_cast<std::uint32_t>(sets[3]);
  spec.wdays = static_cast<std::uint32_t>(sets[4]);
  spec.mday_star = fields[2].front() == '*';
  spec.wday_star = fields[4].front() == '*';
  // Day-of-month takes part unless both day fields are restricted (then the
  // weekday alone can always match): some allowed month must have an allowed day.
  if (spec.mday_star || spec.wday_star) {
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!has_bit(spec.months, m)) continue;
      const int longest = m == 2 ? 29 : days_in_month(2001, m);
      possible = next_bit(spec.mdays, 1) != -1 && next_bit(spec.mdays, 1) <= longest;
    }
    if (!possible) {
      return make_error("invalid_cron",
                        fmt::format("cron expression {} never matches: no allowed month has day-of-month {}",
                                    shown(expr), fields[2]));
    }
  }
  return spec;
}

int weekday_number(const cctz::civil_day& d) {
  switch (cctz::get_weekday(d)) {
    case cctz::weekday::sunday: return 0;
    case cctz::weekday::monday: return 1;
    case cctz::weekday::tuesday: return 2;
    case cctz::weekday::wednesday: return 3;
    case cctz::weekday::thursday: return 4;
    case cctz::weekday::friday: return 5;
    case cctz::weekday::saturday: return 6;
  }
  return 0;
}

bool cron_day_matches(const CronSpec& spec, const cctz::civil_day& d) {
  const bool mday = has_bit(spec.mdays, d.day());
  const bool wday = has_bit(spec.wdays, weekday_number(d));
  return (spec.mday_star || spec.wday_star) ? (mday && wday) : (mday || wday);
}

// First civil minute >= from that the cron matches, within 400 years (one full
// Gregorian cycle, so a compilable cron always matches within it) and year 9999.
std::optional<cctz::civil_minute> cron_next_civil(const CronSpec& spec, cctz::civil_minute c) {
  const std::int64_t last_year = std::min<std::int64_t>(c.year() + 400, kMaxYear);
  while (c.year() <= last_year) {
    if (!has_bit(spec.months, c.month())) {
      c = cctz::civil_minute(cctz::civil_month(c) + 1);
      continue;
    }
    if (!cron_day_matches(spec, cctz::civil_day(c))) {
      c = cctz::civil_minute(cctz::civil_day(c) + 1);
      continue;
    }
    const int hour = next_bit(spec.hours, c.hour());
    if (hour == -1) {
      c = cctz::civil_minute(cctz::civil_day(c) + 1);
      continue;
    }
    if (hour != c.hour()) {
      c = cctz::civil_minute(c.year(), c.month(), c.day(), hour, 0);
    }
    const int minute = next_bit(spec.minutes, c.minute());
    if (minute == -1) {
      c = cctz::civil_minute(cctz::civil_hour(c) + 1);
      continue;
    }
    return cctz::civil_minute(c.year(), c.month(), c.day(), c.hour(), minute);
  }
  return std::nullopt;
}

// --------------------------------------------------------------------- once

// "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)?" ('t', 'z' and a space separator too).
Result<Instant> parse_once(std::string_view text, const cctz::time_zone& tz) {
  auto bad = [&](std::string_view problem) {
    return make_error("invalid_once", fmt::format("once timestamp {} {}", shown(text), problem));
  };
  if (text.size() < 19) return bad("is not an RFC 3339 date-time like 2026-03-08T09:30:00Z");
  auto num = [&](std::size_t pos, std::size_t len) { return parse_int(text.substr(pos, len)); };
  const auto year = num(0, 4), month = num(5, 2), day = num(8, 2), hour = num(11, 2), minute = num(14, 2),
             second = num(17, 2);
  const char sep = text[10];
  if (!year || !month || !day || !hour || !minute || !second || text[4] != '-' || text[7] != '-' ||
      (sep != 'T' && sep != 't' && sep != ' ') || text[13] != ':' || text[16] != ':') {
    return bad("is not an RFC 3339 date-time like 2026-03-08T09:30:00Z");
  }
  if (*month < 1 || *month > 12) return bad(fmt::format("has month {} (not 1-12)", *month));
  if (*day < 1 || *day > days_in_month(*year, *month)) {
    return bad(fmt::format("has day {} (not in {:04}-{:02})", *day, *year, *month));
  }
  if (*hour > 23) return bad(fmt::format("has hour {} (not 0-23)", *hour));
  if (*minute > 59) return bad(fmt::format("has minute {} (not 0-59)", *minute));
  if (*second > 59) return bad(fmt::format("has second {} (not 0-59; leap seconds are not supported)", *second));
  std::string_view rest = text.substr(19);
  if (!rest.empty() && rest.front() == '.') {
    std::size_t n = 1;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
    if (n == 1) return bad("has a '.' without fraction digits");
    rest.remove_prefix(n);  // fractions of a second are dropped
  }
  const cctz::civil_second cs(*year, *month, *day, *hour, *minute, *second);
  if (rest.empty()) return map_civil(cs, tz);
  if (rest == "Z" || rest == "z") return to_instant(cctz::convert(cs, cctz::utc_time_zone()));
  if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    const auto oh = parse_int(rest.substr(1, 2)), om = parse_int(rest.substr(4, 2));
    if (oh && om && *oh <= 23 && *om <= 59) {
      const auto offset = std::chrono::seconds((*oh * 60 + *om) * 60);
      const Instant utc = to_instant(cctz::convert(cs, cctz::utc_time_zone()));
      return rest[0] == '+' ? utc - offset : utc + offset;
    }
  }
  return bad(fmt::format("has offset {}; expected Z, +HH:MM or -HH:MM, or none for local time", shown(rest)));
}

// -------------------------------------------------------------------- rrule

void libical_init() {
  static std::once_flag once;
  // Malformed rules must come back as errors, never abort the process.
  std::call_once(once, [] { icalerror_set_errors_are_fatal(0); });
}

struct RRuleSpec {
  icalrecurrencetype rule{};     // UNTIL removed: enforced on instants below
  cctz::civil_second dtstart;    // floating, in the evaluation zone
  std::optional<Instant> until;  // last instant an occurrence may have
};

icaltimetype to_ical(const cctz::civil_second& cs) {
  icaltimetype t = icaltime_null_time();
  t.year = static_cast<int>(cs.year());
  t.month = cs.month();
  t.day = cs.day();
  t.hour = cs.hour();
  t.minute = cs.minute();
  t.second = cs.second();
  return t;
}

cctz::civil_second from_ical(const icaltimetype& t) {
  if (t.is_date) return cctz::civil_second(t.year, t.month, t.day);
  return cctz::civil_second(t.year, t.month, t.day, t.hour, t.minute, t.second);
}

// Length of one FREQ unit in civil seconds, for frequencies up to WEEKLY; 0 otherwise.
std::int64_t interval_unit_seconds(icalrecurrencetype_frequency freq) {
  switch (freq) {
    case ICAL_SECONDLY_RECURRENCE: return 1;
    case ICAL_MINUTELY_RECURRENCE: return 60;
    case ICAL_HOURLY_RECURRENCE: return 3600;
    case ICAL_DAILY_RECURRENCE: return 86400;
    case ICAL_WEEKLY_RECURRENCE: return 7 * 86400;
    default: return 0;
  }
}

struct IteratorDeleter {
  void operator()(icalrecur_iterator* it) const { icalrecur_iterator_free(it); }
};
using IteratorPtr = std::unique_ptr<icalrecur_iterator, IteratorDeleter>;

Error rrule_error(std::string problem) { return make_error("invalid_rrule", std::move(problem)); }

// "19970902T090000" (with_z: optional trailing Z) or "19970902" (date).
struct IcalStamp {
  cctz::civil_second cs;
  bool is_date = false, is_utc = false;
};

std::optional<IcalStamp> parse_ical_stamp(std::string_view v) {
  IcalStamp s;
  if (v.size() == 8) {
    s.is_date = true;
  } else if (v.size() == 15 || (v.size() == 16 && (v.back() == 'Z' || v.back() == 'z'))) {
    s.is_utc = v.size() == 16;
    if (v[8] != 'T' && v[8] != 't') return std::nullopt;
  } else {
    return std::nullopt;
  }
  const auto y = parse_int(v.substr(0, 4)), mo = parse_int(v.substr(4, 2)), d = parse_int(v.substr(6, 2));
  if (!y || !mo || !d || *mo < 1 || *mo > 12 || *d < 1 || *d > days_in_month(*y, *mo)) return std::nullopt;
  int h = 0, mi = 0, se = 0;
  if (!s.is_date) {
    const auto hh = parse_int(v.substr(9, 2)), mm = parse_int(v.substr(11, 2)), ss = parse_int(v.substr(13, 2));
    if (!hh || !mm || !ss || *hh > 23 || *mm > 59 || *ss > 59) return std::nullopt;
    h = *hh;
    mi = *mm;
    se = *ss;
  }
  s.cs = cctz::civil_second(*y, *mo, *d, h, mi, se);
  return s;
}

// Names the part of a rule libical refused ("BYHOUR=99"), for the message.
std::string diagnose_rrule(std::string_view rule) {
  std::string freq;
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= rule.size()) {
    std::size_t semi = rule.find(';', start);
    if (semi == std::string_view::npos) semi = rule.size();
    parts.push_back(rule.substr(start, semi - start));
    start = semi + 1;
  }
  for (auto part : parts) {
    if (istarts_with(part, "FREQ=")) freq = std::string(part);
  }
  if (freq.empty()) return fmt::format("RRULE {} has no FREQ=SECONDLY..YEARLY part", shown(rule));
  if (icalrecurrencetype_from_string(freq.c_str()).freq == ICAL_NO_RECURRENCE) {
    return fmt::format("RRULE part {} is not a frequency SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY",
                       shown(freq));
  }
  const auto has = [&](std::string_view name) {
    return std::any_of(parts.begin(), parts.end(), [&](std::string_view p) { return istarts_with(p, name); });
  };
  if (has("COUNT=") && has("UNTIL=")) return "RRULE has both COUNT and UNTIL (RFC 5545 allows one of them)";
  for (auto part : parts) {
    if (istarts_with(part, "FREQ=")) continue;
    const std::string probe = "FREQ=DAILY;" + std::string(part);
    icalerror_clear_errno();
    if (part.find('=') == std::string_view::npos ||
        icalrecurrencetype_from_string(probe.c_str()).freq == ICAL_NO_RECURRENCE) {
      return fmt::format("RRULE part {} is invalid", shown(part));
    }
  }
  return fmt::format("RRULE {} is invalid", shown(rule));
}

// BYMONTHDAY days that no BYMONTH month has (February 30th): libical would
// search for centuries before refusing such a rule, so it is refused here.
std::optional<std::string> impossible_month_days(const icalrecurrencetype& rule) {
  if (rule.by_month_day[0] == ICAL_RECURRENCE_ARRAY_MAX || rule.by_year_day[0] != ICAL_RECURRENCE_ARRAY_MAX ||
      rule.by_week_no[0] != ICAL_RECURRENCE_ARRAY_MAX) {
    return std::nullopt;
  }
  std::string days;
  for (int i = 0; i < ICAL_BY_MONTHDAY_SIZE && rule.by_month_day[i] != ICAL_RECURRENCE_ARRAY_MAX; ++i) {
    days += fmt::format("{}{}", days.empty() ? "" : ",", rule.by_month_day[i]);
  }
  for (int m = 1; m <= 12; ++m) {
    bool month_allowed = rule.by_month[0] == ICAL_RECURRENCE_ARRAY_MAX;
    for (int i = 0; i < ICAL_BY_MONTH_SIZE && rule.by_month[i] != ICAL_RECURRENCE_ARRAY_MAX; ++i) {
      month_allowed = month_allowed || rule.by_month[i] == m;
    }
    if (!month_allowed) continue;
    const int longest = m == 2 ? 29 : days_in_month(2001, m);
    for (int i = 0; i < ICAL_BY_MONTHDAY_SIZE && rule.by_month_day[i] != ICAL_RECURRENCE_ARRAY_MAX; ++i) {
      if (std::abs(rule.by_month_day[i]) <= longest) return std::nullopt;
    }
  }
  return fmt::format("RRULE never matches: no allowed month has BYMONTHDAY={}", days);
}

// libical steps a SECONDLY/MINUTELY/HOURLY rule through every second, minute or
// hour and filters, at some 30 us a step: with a month-level limit
// (FREQ=MINUTELY;BYMONTH=12 from January) one next() takes seconds to minutes.
// Such rules are refused; the same schedules are written with FREQ=DAILY or
// coarser plus BYHOUR/BYMINUTE/BYSECOND.
std::optional<std::string> slow_sub_daily(const icalrecurrencetype& rule) {
  const char* freq = rule.freq == ICAL_SECONDLY_RECURRENCE   ? "SECONDLY"
                     : rule.freq == ICAL_MINUTELY_RECURRENCE ? "MINUTELY"
                     : rule.freq == ICAL_HOURLY_RECURRENCE   ? "HOURLY"
                                                             : nullptr;
  if (freq == nullptr) return std::nullopt;
  const std::pair<const short*, const char*> limits[] = {{rule.by_month, "BYMONTH"},
                                                         {rule.by_month_day, "BYMONTHDAY"},
                                                         {rule.by_year_day, "BYYEARDAY"},
                                                         {rule.by_week_no, "BYWEEKNO"}};
  for (const auto& [values, name] : limits) {
    if (values[0] != ICAL_RECURRENCE_ARRAY_MAX) {
      return fmt::format(
          "RRULE FREQ={} with {} is not supported (it would be expanded one {} at a time); use "
          "FREQ=DAILY or coarser with BYHOUR/BYMINUTE/BYSECOND",
          freq, name,
          rule.freq == ICAL_SECONDLY_RECURRENCE   ? "second"
          : rule.freq == ICAL_MINUTELY_RECURRENCE ? "minute"
                                                  : "hour");
    }
  }
  return std::nullopt;
}

struct RRuleCompiled {
  RRuleSpec spec;
  std::string zone;  // the zone to evaluate in (DTSTART's TZID, "UTC" for Z, or the task's)
};

Result<RRuleCompiled> parse_rrule(std::string_view expr, std::string_view task_zone, const cctz::time_zone& task_tz,
                                  Instant anchor) {
  libical_init();
  std::optional<std::string_view> dtstart_line, rule_line;
  std::size_t start = 0;
  while (start <= expr.size()) {
    std::size_t nl = expr.find('\n', start);
    if (nl == std::string_view::npos) nl = expr.size();
    const std::string_view line = trim(expr.substr(start, nl - start));
    start = nl + 1;
    if (line.empty()) continue;
    if (istarts_with(line, "DTSTART")) {
      if (dtstart_line) return rrule_error("RRULE expression has more than one DTSTART line");
      dtstart_line = line;
    } else {
      if (rule_line) {
        return rrule_error(
            fmt::format("RRULE expression has an unexpected line {}; only one DTSTART and one "
                        "RRULE line are accepted",
                        shown(line)));
      }
      rule_line = line;
    }
  }
  if (!rule_line) return rrule_error("RRULE expression has no rule (e.g. FREQ=DAILY;BYHOUR=9)");
  std::string_view rule_text = *rule_line;
  if (istarts_with(rule_text, "RRULE:")) rule_text.remove_prefix(6);
  for (char c : rule_text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f)
      return rrule_error(fmt::format("RRULE {} has a control or non-ASCII byte", shown(rule_text)));
  }

  RRuleCompiled out;
  out.zone = std::string(task_zone);
  cctz::time_zone tz = task_tz;
  if (dtstart_line) {
    // DTSTART[;TZID=Zone][;VALUE=DATE|DATE-TIME]:value
    const std::string_view line = *dtstart_line;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return rrule_error(fmt::format("DTSTART line {} has no ':' before its value", shown(line)));
    }
    std::string_view params = line.substr(7, colon - 7);
    const std::string_view value = line.substr(colon + 1);
    std::optional<std::string_view> tzid;
    std::optional<bool> date_value;
    while (!params.empty()) {
      if (params.front() != ';') return rrule_error(fmt::format("DTSTART line {} is malformed", shown(line)));
      params.remove_prefix(1);
      std::size_t semi = params.find(';');
      const std::string_view param = params.substr(0, semi);
      params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi);
      if (istarts_with(param, "TZID=")) {
        tzid = param.substr(5);
      } else if (iequals(param, "VALUE=DATE")) {
        date_value = true;
      } else if (iequals(param, "VALUE=DATE-TIME")) {
        date_value = false;
      } else {
        return rrule_error(fmt::format("DTSTART parameter {} is not supported (TZID=, VALUE=DATE)", shown(param)));
      }
    }
    const auto stamp = parse_ical_stamp(value);
    if (!stamp || (date_value && *date_value != stamp->is_date) || (stamp->is_date && tzid) ||
        (stamp->is_utc && tzid)) {
      return rrule_error(fmt::format(
          "DTSTART value {} is not a date-time like 20260308T090000, 20260308T090000Z or (VALUE=DATE) 20260308{}",
          shown(value), tzid ? "; with TZID it must not end in Z" : ""));
    }
    if (tzid) {
      auto loaded = load_zone(*tzid, "DTSTART TZID");
      if (!loaded) return loaded.error();
      tz = *loaded;
      out.zone = std::string(*tzid);
    } else if (stamp->is_utc) {
      tz = cctz::utc_time_zone();
      out.zone = "UTC";
    }
    out.spec.dtstart = stamp->cs;  // a DATE starts at 00:00 of that day
  } else {
    out.spec.dtstart = civil_of(anchor, tz);
  }
  if (out.spec.dtstart.year() >= kMaxRRuleYear - 1 || out.spec.dtstart.year() < 1) {
    return rrule_error(
        fmt::format("RRULE DTSTART year {} is outside 0001-{}", out.spec.dtstart.year(), kMaxRRuleYear - 2));
  }

  const std::string rule_string(rule_text);
  icalerror_clear_errno();
  icalrecurrencetype rule = icalrecurrencetype_from_string(rule_string.c_str());
  if (rule.freq == ICAL_NO_RECURRENCE) return rrule_error(diagnose_rrule(rule_text));
  if (rule.count < 0 || rule.count > kMaxRRuleCount) {
    return rrule_error(fmt::format("RRULE COUNT {} is above the supported {}", rule.count, kMaxRRuleCount));
  }
  if (!icaltime_is_null_time(rule.until)) {
    if (rule.count != 0) return rrule_error("RRULE has both COUNT and UNTIL (RFC 5545 allows one of them)");
    const cctz::civil_second until = from_ical(rule.until);
    if (rule.until.is_date) {
      out.spec.until = map_civil(cctz::civil_second(cctz::civil_day(until) + 1), tz) - std::chrono::seconds(1);
    } else if (icaltime_is_utc(rule.until)) {
      out.spec.until = to_instant(cctz::convert(until, cctz::utc_time_zone()));
    } else {
      out.spec.until = map_civil(until, tz);
    }
    rule.until = icaltime_null_time();
  }
  if (auto impossible = impossible_month_days(rule)) return rrule_error(*impossible);
  if (auto slow = slow_sub_daily(rule)) return rrule_error(*slow);
  out.spec.rule = rule;
  // libical refuses rules with no occurrence at all (e.g. February 30th) here.
  IteratorPtr it(icalrecur_iterator_new(rule, to_ical(out.spec.dtstart)));
  if (!it || icaltime_is_null_time(icalrecur_iterator_next(it.get()))) {
    return rrule_error(fmt::format(
        "RRULE {} produces no occurrence from DTSTART {}", shown(rule_text),
        cctz::format("%Y%m%dT%H%M%S", cctz::convert(out.spec.dtstart, cctz::utc_time_zone()), cctz::utc_time_zone())));
  }
  return out;
}

}  // namespace

// -------------------------------------------------------------------- Schedule

namespace {
// Where the last walk of a COUNT rule stopped. COUNT rules are counted from
// DTSTART, so instead of walking again on every call the walk continues when
// `after` did not go back (the usual case: next_after(previous occurrence)).
struct CountWalk {
  std::mutex mu;
  IteratorPtr it;
  std::optional<Instant> last, before_last;  // the last two occurrences produced
  bool done = false;                         // the iterator is exhausted
};
}  // namespace

struct Schedule::Impl {
  ScheduleKind kind = ScheduleKind::manual;
  std::string expr, timezone, effective_timezone;
  cctz::time_zone tz;
  CronSpec cron;
  std::optional<RRuleSpec> rrule;
  std::unique_ptr<CountWalk> count_walk;  // rrule with COUNT only
  Instant once_at{};

  std::optional<Instant> next_counted(Instant after) const;
};

std::optional<Instant> Schedule::Impl::next_counted(Instant after) const {
  CountWalk& w = *count_walk;
  std::lock_guard lock(w.mu);
  if (w.last && *w.last > after && (!w.before_last || *w.before_last <= after)) return w.last;
  if (!w.it || !w.last || *w.last > after) {
    w.it.reset(icalrecur_iterator_new(rrule->rule, to_ical(rrule->dtstart)));
    w.last.reset();
    w.before_last.reset();
    w.done = false;
    if (!w.it) return std::nullopt;
  }
  for (int step = 0; step < kMaxRRuleSteps && !w.done; ++step) {
    const icaltimetype next = icalrecur_iterator_next(w.it.get());
    if (icaltime_is_null_time(next)) {
      w.done = true;
      break;
    }
    w.before_last = w.last;
    w.last = map_civil(from_ical(next), tz);
    if (*w.last > after) return w.last;
  }
  return std::nullopt;
}

std::optional<ScheduleKind> parse_schedule_kind(std::string_view name) {
  for (auto kind :
       {ScheduleKind::cron, ScheduleKind::rrule, ScheduleKind::once, ScheduleKind::event, ScheduleKind::manual}) {
    if (to_string(kind) == name) return kind;
  }
  return std::nullopt;
}

std::string_view to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::cron: return "cron";
    case ScheduleKind::rrule: return "rrule";
    case ScheduleKind::once: return "once";
    case ScheduleKind::event: return "event";
    case ScheduleKind::manual: return "manual";
  }
  return "manual";
}

Result<Schedule> Schedule::compile(ScheduleKind kind, std::string_view expr_in, std::string_view timezone_in,
                                   Instant anchor) {
  auto impl = std::make_shared<Impl>();
  impl->kind = kind;
  const std::string_view expr = trim(expr_in);
  if (expr_in.size() > kMaxExprBytes) {
    return make_error("invalid_schedule", fmt::format("{} schedule expression is {} bytes; the limit is {}",
                                                      to_string(kind), expr_in.size(), kMaxExprBytes));
  }
  impl->expr = std::string(expr);
  const std::string_view zone = timezone_in.empty() ? std::string_view("UTC") : timezone_in;
  auto tz = load_zone(zone, "timezone");
  if (!tz) return tz.error();
  impl->tz = *tz;
  impl->timezone = std::string(zone);
  impl->effective_timezone = impl->timezone;

  switch (kind) {
    case ScheduleKind::cron: {
      auto spec = parse_cron(expr);
      if (!spec) return spec.error();
      impl->cron = *spec;
      break;
    }
    case ScheduleKind::rrule: {
      auto compiled = parse_rrule(expr, zone, impl->tz, anchor);
      if (!compiled) return compiled.error();
      impl->rrule = compiled->spec;
      if (compiled->spec.rule.count > 0) impl->count_walk = std::make_unique<CountWalk>();
      if (compiled->zone != impl->timezone) {
        auto eff = load_zone(compiled->zone, "DTSTART TZID");
        if (!eff) return eff.error();
        impl->tz = *eff;
        impl->effective_timezone = compiled->zone;
      }
      break;
    }
    case ScheduleKind::once: {
      auto at = parse_once(expr, impl->tz);
      if (!at) return at.error();
      impl->once_at = *at;
      break;
    }
    case ScheduleKind::event: {
      if (auto valid = validate_pattern(expr); !valid) {
        return make_error("invalid_event_pattern",
                          fmt::format("event pattern {} is invalid: {}", shown(expr), valid.error().message));
      }
      break;
    }
    case ScheduleKind::manual:
      if (!expr.empty()) {
        return make_error("invalid_schedule", fmt::format("manual schedule takes no expression, got {}", shown(expr)));
      }
      break;
  }
  return Schedule(std::move(impl));
}

std::optional<Instant> Schedule::next_after(Instant after) const {
  const Impl& s = *impl_;
  switch (s.kind) {
    case ScheduleKind::event:
    case ScheduleKind::manual: return std::nullopt;
    case ScheduleKind::once:
      if (s.once_at > after) return s.once_at;
      return std::nullopt;
    case ScheduleKind::cron: {
      if (after >= kMaxInstant) return std::nullopt;
      // Every civil time <= civil(after) maps to an instant <= after, so the
      // search starts at the next civil minute; candidates inside a repeated
      // (fall-back) hour may still map to <= after and are passed over.
      auto from = cctz::civil_minute(civil_of(after, s.tz)) + 1;
      for (int guard = 0; guard < 100000; ++guard) {
        const auto c = cron_next_civil(s.cron, from);
        if (!c) return std::nullopt;
        const Instant t = map_civil(cctz::civil_second(*c), s.tz);
        if (t > after) return t;
        from = *c + 1;
      }
      return std::nullopt;
    }
    case ScheduleKind::rrule: {
      const RRuleSpec& r = *s.rrule;
      if (after >= kMaxInstant || (r.until && after >= *r.until)) return std::nullopt;
      const cctz::civil_second from = civil_of(after, s.tz);
      if (from.year() >= kMaxRRuleYear - 1) return std::nullopt;
      // COUNT rules are counted from DTSTART (continuing the previous walk).
      if (r.rule.count > 0) return s.next_counted(after);
      // Otherwise skip ahead to `after` where that provably gives the same occurrences:
      //  - INTERVAL=1: libical's set_start;
      //  - INTERVAL>1 up to WEEKLY: DTSTART moved forward by whole intervals
      //    (civil arithmetic, so the series is unchanged; libical's set_start
      //    loses the alignment of e.g. MINUTELY;INTERVAL=7);
      //  - MONTHLY/YEARLY with INTERVAL>1: from DTSTART (few periods per year).
      cctz::civil_second start = r.dtstart;
      bool set_start = false;
      if (from > r.dtstart) {
        if (r.rule.interval <= 1) {
          set_start = true;
        } else if (const auto unit = interval_unit_seconds(r.rule.freq); unit > 0) {
          const std::int64_t period = unit * r.rule.interval;
          const std::int64_t k = (from - r.dtstart) / period - 1;
          if (k > 0) start = r.dtstart + k * period;
        }
      }
      IteratorPtr it(icalrecur_iterator_new(r.rule, to_ical(start)));
      if (!it) return std::nullopt;
      if (set_start) icalrecur_iterator_set_start(it.get(), to_ical(from));
      for (int step = 0; step < kMaxRRuleSteps; ++step) {
        const icaltimetype next = icalrecur_iterator_next(it.get());
        if (icaltime_is_null_time(next)) return std::nullopt;
        const Instant t = map_civil(from_ical(next), s.tz);
        if (r.until && t > *r.until) return std::nullopt;
        if (t > after) return t;
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

bool Schedule::matches_topic(std::string_view topic) const {
  return impl_->kind == ScheduleKind::event && topic_matches(impl_->expr, topic);
}

ScheduleKind Schedule::kind() const { return impl_->kind; }
const std::string& Schedule::expr() const { return impl_->expr; }
const std::string& Schedule::timezone() const { return impl_->timezone; }
const std::string& Schedule::effective_timezone() const { return impl_->effective_timezone; }

}  // namespace ordinaut::scheduler
