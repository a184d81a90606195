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

/// Severity of a log record.
enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };
/// "debug", "info", "warn", "error".
const char* to_string(LogLevel level) noexcept;

/// One log or audit record, as a LogSink receives it.
struct LogRecord {
  std::int64_t time_ms = 0;         ///< milliseconds since the Unix epoch
  LogLevel level = LogLevel::info;  ///< severity
  bool audit = false;               ///< an audit record (security-relevant), not a plain log line
  std::string event;                ///< snake_case name of what happened: "extension_loaded"
  std::string extension;    ///< "" when the record concerns no extension
  std::string message;      ///< for people
  std::string fields_json;  ///< a JSON object text, or ""
};

/// Renders a record as one JSON line (no trailing newline).
std::string format_log_json(const LogRecord& record);
/// Renders a record as one human-readable line (no trailing newline).
std::string format_log_text(const LogRecord& record);

/// Where records go (HostOptions::log_sink). Called from many threads.
using LogSink = std::function<void(const LogRecord&)>;

/// A sink writing JSON (or text) lines to stderr, serialised by a mutex.
LogSink stderr_log_sink(bool json = true, LogLevel min_level = LogLevel::info);

/// Logger handed to an extension (bound to its id) or used by the host.
class Logger {
 public:
  /// Writes to `sink` with records naming `extension` ("" for the host).
  Logger(std::shared_ptr<LogSink> sink, std::string extension)
      : sink_(std::move(sink)), extension_(std::move(extension)) {}

  /// Writes one record: `event` a snake_case name, `fields_json` a JSON
  /// object text of extra fields, or empty.
  void log(LogLevel level, std::string_view event, std::string_view message,
           std::string_view fields_json = {}) const;
  /// log() at level info.
  void info(std::string_view event, std::string_view message, std::string_view fields_json = {}) const {
    log(LogLevel::info, event, message, fields_json);
  }
  /// log() at level warn.
  void warn(std::string_view event, std::string_view message, std::string_view fields_json = {}) const {
    log(LogLevel::warn, event, message, fields_json);
  }
  /// log() at level error.
  void error(std::string_view event, std::string_view message, std::string_view fields_json = {}) const {
    log(LogLevel::error, event, message, fields_json);
  }
  /// An audit record (level warn, audit = true).
  void audit(std::string_view event, std::string_view message, std::string_view fields_json = {}) const;

  /// The extension id the records carry.
  const std::string& extension() const noexcept { return extension_; }

 private:
  std::shared_ptr<LogSink> sink_;
  std::string extension_;
};

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
