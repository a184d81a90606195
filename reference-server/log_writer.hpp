// LogWriter: the server's log sink. Lines go to stderr through a buffer that a
// background thread writes out every `interval` (or at 64 KiB), so that a
// request does not pay a write(2) and a lock hand-off for its log line.
// Warnings, errors and audit records are written through at once, after
// whatever was buffered before them, so order is kept and nothing important
// waits. flush() (also run by the destructor) writes everything out.
//
// Thread safety: sink() may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "ordinaut/logging.hpp"

namespace ordinaut_server {

class LogWriter {
 public:
  LogWriter(bool json, std::chrono::milliseconds interval);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  /// A sink writing through this writer; it must not outlive the writer.
  ordinaut::LogSink sink();
  void flush();

 private:
  void append(const ordinaut::LogRecord& record);
  void write_out(std::string& text);  // REQUIRES: mutex_ held

  const bool json_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string buffer_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace ordinaut_server
