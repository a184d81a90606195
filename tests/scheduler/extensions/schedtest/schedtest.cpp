// Test-only extension for the scheduler's loopback tests
// (tests/scheduler/test_scheduler_server.cpp, test_scheduler_cluster.cpp).
//
//   ext.schedtest.wait   {"ms": N, "mark": M}
//                                     waits N ms, checking ToolContext::cancelled()
//                                     every 10 ms; a cancelled call throws
//                                     ToolError("cancelled"). With "mark", first
//                                     records M as "record" does, so a test knows
//                                     the call has started.
//   ext.schedtest.record {"key": K}   appends "K <pid>\n" to the file named by
//                                     ORDINAUT_SCHEDTEST_RECORD with one
//                                     O_APPEND write, so lines from several
//                                     server processes never interleave.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include <ordinaut/extension.hpp>

namespace {

// Descriptions and schemas equal extension.json's (the host checks).
constexpr const char* kWaitDescription =
    "Waits `ms` milliseconds, or until the caller cancels the call; a cancelled call fails with code \"cancelled\". "
    "With `mark`, first records it as `record` does; with `first_ms` too, the first call to record that mark waits "
    "`first_ms` instead.";
constexpr const char* kRecordDescription =
    "Appends `key` and this process' id as one line to the file named by ORDINAUT_SCHEDTEST_RECORD, so a test can "
    "count the calls of every server.";
constexpr const char* kWaitInput = R"({"type":"object","properties":{"ms":{"type":"integer","minimum":0,"maximum":600000},
  "mark":{"type":"string","minLength":1,"maxLength":200},"first_ms":{"type":"integer","minimum":0,"maximum":600000}},
  "required":["ms"],"additionalProperties":false})";
constexpr const char* kWaitOutput = R"({"type":"object","properties":{"waited_ms":{"type":"integer"}},"required":["waited_ms"]})";
constexpr const char* kRecordInput = R"({"type":"object","properties":{"key":{"type":"string","minLength":1,"maxLength":200}},
  "required":["key"],"additionalProperties":false})";
constexpr const char* kRecordOutput = R"({"type":"object","properties":{"key":{"type":"string"},"pid":{"type":"integer"}},
  "required":["key","pid"]})";

const char* record_path() {
  const char* path = std::getenv("ORDINAUT_SCHEDTEST_RECORD");
  if (path == nullptr || *path == '\0') throw ordinaut::ToolError("not_configured", "ORDINAUT_SCHEDTEST_RECORD is not set");
  return path;
}

// True when some line of the record file has `key` as its first word.
bool recorded(const std::string& key) {
  std::ifstream in(record_path());
  for (std::string word, pid; in >> word >> pid;) {
    if (word == key) return true;
  }
  return false;
}

// Appends "key pid\n" to ORDINAUT_SCHEDTEST_RECORD with one O_APPEND write.
void append_line(const std::string& key) {
  const char* path = record_path();
  const std::string line = fmt::format("{} {}\n", key, ::getpid());
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw ordinaut::ToolError("io_error", fmt::format("cannot open {}", path));
  const bool whole = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!whole) throw ordinaut::ToolError("io_error", fmt::format("cannot append to {}", path));
}

std::string string_member(const ordinaut::JsonValue& in, const char* name) {
  return std::string(in[name].GetString(), in[name].GetStringLength());
}

ordinaut::Json wait_for(const ordinaut::JsonValue& in, ordinaut::ToolContext& context) {
  using Clock = std::chrono::steady_clock;
  auto wanted = std::chrono::milliseconds(in["ms"].GetInt64());
  if (in.HasMember("mark")) {
    const std::string mark = string_member(in, "mark");
    if (in.HasMember("first_ms") && !recorded(mark)) wanted = std::chrono::milliseconds(in["first_ms"].GetInt64());
    append_line(mark);
  }
  const auto start = Clock::now();
  while (Clock::now() - start < wanted) {
    if (context.cancelled()) throw ordinaut::ToolError("cancelled", "the wait was cancelled");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  return ordinaut::json::parse(fmt::format(R"({{"waited_ms":{}}})", waited)).value();
}

ordinaut::Json record(const ordinaut::JsonValue& in, ordinaut::ToolContext&) {
  const std::string key = string_member(in, "key");
  append_line(key);
  return ordinaut::json::parse(fmt::format(R"({{"key":"{}","pid":{}}})", ordinaut::json::escape(key), ::getpid()))
      .value();
}

class SchedTest final : public ordinaut::Extension {
 public:
  ordinaut::ExtensionInfo info() const override {
    return {"schedtest", "Scheduler test extension", "1.0.0", "Tools for the scheduler's loopback tests"};
  }
  ordinaut::CapabilitySet requested_capabilities() const override { return {ordinaut::Capability::TOOLS}; }

  std::optional<ordinaut::Router> setup(ordinaut::SetupContext& context) override {
    auto& tools = context.tool_registrar();
    tools.add({.name = tools.prefix() + "wait",
               .description = kWaitDescription,
               .input_schema = kWaitInput,
               .output_schema = kWaitOutput,
               .function = wait_for});
    tools.add({.name = tools.prefix() + "record",
               .description = kRecordDescription,
               .input_schema = kRecordInput,
               .output_schema = kRecordOutput,
               .function = record});
    return std::nullopt;
  }
};

}  // namespace

ORDINAUT_EXTENSION(SchedTest)
