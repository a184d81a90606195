// LogWriter: the server's log sink. Lines go to stderr through a buffer that a
// background thread writes out every `interval` (or at 64 KiB), so that a
// request does not pay a write(2) and a lock hand-off for its log line.
// The write happens outside the lock appenders take, so a slow stderr never
// stalls a request. Warnings, errors and audit records are written at once, after
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
  static void write_out(std::string& text);

  const bool json_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;  // guards buffer_, quit_
  std::condition_variable cv_;
  std::string buffer_;
  std::mutex write_mutex_;  // held while a taken buffer is written; guards pending_
  std::string pending_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace ordinaut_server
