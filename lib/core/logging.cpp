// Log records, their JSON and text forms, the stderr sink and Logger
// (include/ordinaut/logging.hpp).
#include "ordinaut/logging.hpp"

#include <cstdio>
#include <mutex>

#include <fmt/format.h>

#include "core/strings.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "info";
}

std::string format_log_json(const LogRecord& r) {
  std::string out = fmt::format(R"({{"time":"{}","level":"{}")", detail::rfc3339(r.time_ms), to_string(r.level));
  if (r.audit) out += R"(,"audit":true)";
  out += fmt::format(R"(,"event":"{}")", json::escape(r.event));
  if (!r.extension.empty()) out += fmt::format(R"(,"extension":"{}")", json::escape(r.extension));
  if (!r.message.empty()) out += fmt::format(R"(,"message":"{}")", json::escape(r.message));
  if (!r.fields_json.empty()) out += fmt::format(R"(,"fields":{})", r.fields_json);
  out += '}';
  return out;
}

std::string format_log_text(const LogRecord& r) {
  std::string out =
      fmt::format("{} {:5} {}{}", detail::rfc3339(r.time_ms), to_string(r.level), r.audit ? "AUDIT " : "", r.event);
  if (!r.extension.empty()) out += fmt::format(" ext={}", r.extension);
  if (!r.message.empty()) out += fmt::format(" {}", r.message);
  if (!r.fields_json.empty()) out += fmt::format(" {}", r.fields_json);
  return out;
}

LogSink stderr_log_sink(bool json_lines, LogLevel min_level) {
  auto mutex = std::make_shared<std::mutex>();
  return [mutex, json_lines, min_level](const LogRecord& r) {
    if (r.level < min_level && !r.audit) return;
    std::string line = json_lines ? format_log_json(r) : format_log_text(r);
    line += '\n';
    std::lock_guard lock(*mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  };
}

void Logger::log(LogLevel level, std::string_view event, std::string_view message, std::string_view fields_json) const {
  if (!sink_ || !*sink_) return;
  LogRecord r;
  r.time_ms = detail::now_ms();
  r.level = level;
  r.event = event;
  r.extension = extension_;
  r.message = message;
  r.fields_json = fields_json;
  (*sink_)(r);
}

void Logger::audit(std::string_view event, std::string_view message, std::string_view fields_json) const {
  if (!sink_ || !*sink_) return;
  LogRecord r;
  r.time_ms = detail::now_ms();
  r.level = LogLevel::warn;
  r.audit = true;
  r.event = event;
  r.extension = extension_;
  r.message = message;
  r.fields_json = fields_json;
  (*sink_)(r);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
