// Small pieces of the public API: version, capabilities, logging, strings.
#include <cstdio>
#include <ctime>
#include <mutex>

#include <fmt/format.h>

#include "ordinaut/capability.hpp"
#include "ordinaut/json.hpp"
#include "ordinaut/logging.hpp"
#include "ordinaut/version.hpp"
#include "strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

const char* library_version() noexcept { return ORDINAUT_VERSION_STRING; }
std::uint32_t library_abi_version() noexcept { return ORDINAUT_ABI_VERSION; }

// ---- Capability ------------------------------------------------------------

namespace {
constexpr const char* kCapabilityNames[kCapabilityCount] = {"ROUTES",     "TOOLS",           "EVENTS_PUB",
                                                            "EVENTS_SUB", "BACKGROUND_TASKS", "STATIC"};
}

const char* to_string(Capability capability) noexcept {
  auto i = static_cast<unsigned>(capability);
  return i < kCapabilityCount ? kCapabilityNames[i] : "UNKNOWN";
}

std::optional<Capability> parse_capability(std::string_view name) noexcept {
  for (int i = 0; i < kCapabilityCount; ++i) {
    if (name == kCapabilityNames[i]) return static_cast<Capability>(i);
  }
  return std::nullopt;
}

std::vector<Capability> CapabilitySet::list() const {
  std::vector<Capability> out;
  for (int i = 0; i < kCapabilityCount; ++i) {
    if (contains(static_cast<Capability>(i))) out.push_back(static_cast<Capability>(i));
  }
  return out;
}

std::vector<std::string> CapabilitySet::names() const {
  std::vector<std::string> out;
  for (Capability c : list()) out.emplace_back(to_string(c));
  return out;
}

CapabilityError::CapabilityError(std::string extension_id, Capability capability)
    : extension_id_(std::move(extension_id)),
      capability_(capability),
      message_(fmt::format("extension '{}' was not granted capability {}", extension_id_, to_string(capability))) {}

// ---- Logging ---------------------------------------------------------------

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
  std::string out = fmt::format("{} {:5} {}{}", detail::rfc3339(r.time_ms), to_string(r.level),
                                r.audit ? "AUDIT " : "", r.event);
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

namespace ordinaut::detail {

std::string rfc3339(std::int64_t epoch_ms) {
  std::time_t secs = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(epoch_ms % 1000));
}

}  // namespace ordinaut::detail
