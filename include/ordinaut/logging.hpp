// Structured logs and the audit log.
//
// The host owns one LogSink; every record carries a time, a level, an event
// name ("extension_loaded", "capability_denied", ...), the extension it
// concerns (if any), a message and optional JSON fields. Audit records
// (security-relevant: denied capabilities, denied scopes, load refusals) have
// `audit == true`. The default sink writes one JSON object per line to stderr.
//
// Thread safety: Logger is safe for concurrent use; a sink must be too.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };
const char* to_string(LogLevel level) noexcept;

struct LogRecord {
  std::int64_t time_ms = 0;
  LogLevel level = LogLevel::info;
  bool audit = false;
  std::string event;
  std::string extension;    ///< "" when the record concerns no extension
  std::string message;
  std::string fields_json;  ///< a JSON object text, or ""
};

/// Renders a record as one JSON line (no trailing newline).
std::string format_log_json(const LogRecord& record);
/// Renders a record as one human-readable line (no trailing newline).
std::string format_log_text(const LogRecord& record);

using LogSink = std::function<void(const LogRecord&)>;

/// A sink writing JSON (or text) lines to stderr, serialised by a mutex.
LogSink stderr_log_sink(bool json = true, LogLevel min_level = LogLevel::info);

/// Logger handed to an extension (bound to its id) or used by the host.
class Logger {
 public:
  Logger(std::shared_ptr<LogSink> sink, std::string extension)
      : sink_(std::move(sink)), extension_(std::move(extension)) {}

  void log(LogLevel level, std::string_view event, std::string_view message,
           std::string_view fields_json = {}) const;
  void info(std::string_view event, std::string_view message, std::string_view fields_json = {}) const {
    log(LogLevel::info, event, message, fields_json);
  }
  void warn(std::string_view event, std::string_view message, std::string_view fields_json = {}) const {
    log(LogLevel::warn, event, message, fields_json);
  }
  void error(std::string_view event, std::string_view message, std::string_view fields_json = {}) const {
    log(LogLevel::error, event, message, fields_json);
  }
  /// An audit record (level warn, audit = true).
  void audit(std::string_view event, std::string_view message, std::string_view fields_json = {}) const;

  const std::string& extension() const noexcept { return extension_; }

 private:
  std::shared_ptr<LogSink> sink_;
  std::string extension_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
