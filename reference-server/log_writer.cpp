#include "log_writer.hpp"

#include <unistd.h>

#include <cerrno>

namespace ordinaut_server {

namespace {
constexpr std::size_t kFlushAt = 64 * 1024;
}

LogWriter::LogWriter(bool json, std::chrono::milliseconds interval) : json_(json), interval_(interval) {
  thread_ = std::thread([this] {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, interval_, [this] { return quit_ || buffer_.size() >= kFlushAt; });
        if (quit_) return;
      }
      flush();
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

// The buffer is taken under mutex_ and written outside it, so appending never
// waits for a write(2); write_mutex_ keeps the takes and writes in order.
void LogWriter::flush() {
  std::lock_guard write_lock(write_mutex_);
  {
    std::lock_guard lock(mutex_);
    if (buffer_.empty()) return;
    pending_.swap(buffer_);
  }
  write_out(pending_);
}

void LogWriter::append(const ordinaut::LogRecord& record) {
  if (record.level < ordinaut::LogLevel::info && !record.audit) return;
  std::string line = json_ ? ordinaut::format_log_json(record) : ordinaut::format_log_text(record);
  line += '\n';
  bool full = false;
  {
    std::lock_guard lock(mutex_);
    buffer_ += line;
    full = buffer_.size() >= kFlushAt;
  }
  if (record.audit || record.level >= ordinaut::LogLevel::warn) {
    flush();
  } else if (full) {
    cv_.notify_one();
  }
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
