#include "task_stats.hpp"

#include <array>
#include <exception>

namespace ordinaut::observability {
namespace {

constexpr std::array<std::string_view, 4> kEndStatuses = {"succeeded", "failed", "cancelled", "skipped"};
constexpr std::array<std::string_view, 3> kTimedStatuses = {"succeeded", "failed", "cancelled"};
constexpr std::array<std::string_view, 3> kChanges = {"created", "updated", "deleted"};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& words, std::string_view word) {
  for (auto w : words) {
    if (w == word) return true;
  }
  return false;
}

// `count` decimal digits at `pos`, or -1.
int digits(std::string_view s, std::size_t pos, std::size_t count) {
  if (pos + count > s.size()) return -1;
  int n = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    n = n * 10 + (s[i] - '0');
  }
  return n;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// A non-empty string member, or nullptr.
const JsonValue* string_member(const JsonValue& object, const char* name) {
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString() || it->value.GetStringLength() == 0) return nullptr;
  return &it->value;
}

// A time member: absent or null → nullopt in `out`, true; an RFC 3339 string
// → its milliseconds, true; anything else → false.
bool time_member(const JsonValue& object, const char* name, std::optional<std::int64_t>& out) {
  out.reset();
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || it->value.IsNull()) return true;
  if (!it->value.IsString()) return false;
  out = parse_rfc3339_ms(std::string_view(it->value.GetString(), it->value.GetStringLength()));
  return out.has_value();
}

Counter& task_events(MetricsRegistry& metrics, const char* kind) {
  return metrics.counter("ordinaut_task_events_total", "task.* events seen by observability, by how they were counted.",
                         {{"kind", kind}});
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.f+](Z|±HH:MM)
  const int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  const int hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 60 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int month_days = kDays[static_cast<std::size_t>(month - 1)] + (month == 2 && leap(year) ? 1 : 0);
  if (day > month_days) return std::nullopt;
  std::size_t pos = 19;
  std::int64_t ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    std::size_t n = 0;
    for (++pos; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++n) {
      if (n < 3) ms = ms * 10 + (s[pos] - '0');
    }
    if (n == 0) return std::nullopt;
    for (; n < 3; ++n) ms *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int oh = digits(s, pos + 1, 2), om = digits(s, pos + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59 || s[pos + 3] != ':') return std::nullopt;
    offset_minutes = (s[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return seconds * 1000 + ms;
}

TaskStats::TaskStats(MetricsRegistry& metrics)
    : metrics_(metrics),
      counted_(task_events(metrics, "counted")),
      ignored_(task_events(metrics, "ignored")),
      invalid_(task_events(metrics, "invalid")) {
  std::lock_guard lock(mutex_);
  (void)series("scheduler");  // dashboards see 0 before the first run
}

TaskStats::Series& TaskStats::series(const std::string& source) {
  static const std::vector<double> buckets = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
  if (auto it = by_source_.find(source); it != by_source_.end()) return it->second;
  Series s;
  s.started = &metrics_.counter("ordinaut_task_runs_started_total", "Task runs started (task.run.started events).",
                                {{"source", source}});
  for (auto status : kEndStatuses) {
    s.finished.emplace(status, &metrics_.counter("ordinaut_task_runs_finished_total",
                                                 "Task runs that ended, by final status (task.run.succeeded, .failed, "
                                                 ".cancelled, .skipped events; skipped runs never started).",
                                                 {{"source", source}, {"status", std::string(status)}}));
  }
  for (auto status : kTimedStatuses) {
    s.duration.emplace(status, &metrics_.histogram("ordinaut_task_run_duration_seconds",
                                                   "Duration of ended task runs that had started (finished_at - "
                                                   "started_at), by final status.",
                                                   buckets, {{"source", source}, {"status", std::string(status)}}));
  }
  for (auto change : kChanges) {
    s.changes.emplace(change, &metrics_.counter("ordinaut_task_changes_total",
                                                "Tasks created, updated and deleted (task.created, task.updated, "
                                                "task.deleted events).",
                                                {{"source", source}, {"change", std::string(change)}}));
  }
  s.running = &metrics_.gauge("ordinaut_task_runs_running",
                              "Task runs seen starting and not yet ending (as far as this server's events tell).",
                              {{"source", source}});
  return by_source_.emplace(source, std::move(s)).first->second;
}

void TaskStats::record(const Event& event) noexcept {
  std::string_view topic = event.topic;
  bool known = true;
  bool valid = false;
  try {
    if (topic.starts_with("task.run.") && (topic.substr(9) == "started" || one_of(kEndStatuses, topic.substr(9)))) {
      valid = record_run(topic.substr(9), event);
    } else if (topic.starts_with("task.") && one_of(kChanges, topic.substr(5))) {
      valid = record_change(topic.substr(5), event);
    } else {
      known = false;
    }
  } catch (const std::exception&) {  // a series limit: keep the bus healthy
    valid = false;
  }
  try {
    if (!known) {
      ignored_.inc();
    } else {
      (valid ? counted_ : invalid_).inc();
    }
  } catch (const std::exception&) {  // inc(1) never throws; noexcept stays honest
  }
}

bool TaskStats::record_run(std::string_view status, const Event& event) {
  const JsonValue* payload = event.payload.get();
  if (payload == nullptr || !payload->IsObject()) return false;
  const JsonValue* run_id = string_member(*payload, "id");
  if (run_id == nullptr || string_member(*payload, "task_id") == nullptr) return false;
  if (auto it = payload->FindMember("status"); it != payload->MemberEnd()) {
    // A started run's status is "running"; an ended run's, the topic's last word.
    const std::string_view expected = status == "started" ? std::string_view("running") : status;
    if (!it->value.IsString() || std::string_view(it->value.GetString(), it->value.GetStringLength()) != expected) {
      return false;  // the run's own status contradicts the topic
    }
  }
  std::optional<std::int64_t> started_at, finished_at;
  if (!time_member(*payload, "started_at", started_at) || !time_member(*payload, "finished_at", finished_at)) {
    return false;
  }
  const bool timed = started_at && finished_at && one_of(kTimedStatuses, status);
  if (timed && *finished_at < *started_at) return false;
  const std::string_view id(run_id->GetString(), run_id->GetStringLength());

  std::lock_guard lock(mutex_);
  Series& s = series(event.source);
  if (status == "started") {
    s.started->inc();
    if (!s.running_ids.contains(id) && s.running_ids.size() < kMaxRunningTracked) s.running_ids.emplace(id);
  } else {
    s.finished.find(status)->second->inc();
    if (timed) s.duration.find(status)->second->observe(static_cast<double>(*finished_at - *started_at) / 1000.0);
    if (auto it = s.running_ids.find(id); it != s.running_ids.end()) s.running_ids.erase(it);
  }
  s.running->set(static_cast<double>(s.running_ids.size()));
  return true;
}

bool TaskStats::record_change(std::string_view change, const Event& event) {
  const JsonValue* payload = event.payload.get();
  if (payload == nullptr || !payload->IsObject() || string_member(*payload, "id") == nullptr) return false;
  std::lock_guard lock(mutex_);
  series(event.source).changes.find(change)->second->inc();
  return true;
}

}  // namespace ordinaut::observability
