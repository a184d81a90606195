#include "log_writer.hpp"

#include <unistd.h>

#include <cerrno>

namespace ordinaut_server {

namespace {
constexpr std::size_t kFlushAt = 64 * 1024;
}

LogWriter::LogWriter(bool json, std::chrono::milliseconds interval) : json_(json), interval_(interval) {
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!quit_) {
      cv_.wait_for(lock, interval_);
      if (!buffer_.empty()) write_out(buffer_);
    }
  });
}

LogWriter::~LogWriter() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
  flush();
}

ordinaut::LogSink LogWriter::sink() {
  return [this](const ordinaut::LogRecord& record) { append(record); };
}

void LogWriter::flush() {
  std::lock_guard lock(mutex_);
  if (!buffer_.empty()) write_out(buffer_);
}

void LogWriter::append(const ordinaut::LogRecord& record) {
  if (record.level < ordinaut::LogLevel::info && !record.audit) return;
  std::string line = json_ ? ordinaut::format_log_json(record) : ordinaut::format_log_text(record);
  line += '\n';
  const bool urgent = record.audit || record.level >= ordinaut::LogLevel::warn;
  std::lock_guard lock(mutex_);
  buffer_ += line;
  if (urgent || buffer_.size() >= kFlushAt) write_out(buffer_);
}

void LogWriter::write_out(std::string& text) {
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(STDERR_FILENO, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // stderr is gone: drop the lines rather than block the server
    off += static_cast<std::size_t>(n);
  }
  text.clear();
}

}  // namespace ordinaut_server
