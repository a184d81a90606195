// Helpers shared by the unit tests: temporary folders, scoped environment
// variables, captured logs and small request builders.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ordinaut/host.hpp>
#include <ordinaut/json.hpp>
#include <ordinaut/logging.hpp>

namespace test_support {

/// A fresh folder under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ordinaut-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

/// Puts a module built in the build tree into an extension folder as `dest`:
/// a hard link, so that it is the same file (dlopen finds an already-loaded
/// module by device and inode, so a module's state is one per process however
/// many folders hold it) and a real file inside the folder (the host refuses a
/// module that resolves outside its folder, as a symlink into the build tree
/// would). Across filesystems, where a hard link cannot be made, a copy: then
/// it is a module of its own, loaded once more.
inline void place_module(const std::filesystem::path& module, const std::filesystem::path& dest) {
  std::filesystem::create_directories(dest.parent_path());
  std::error_code ec;
  std::filesystem::create_hard_link(module, dest, ec);
  if (ec) std::filesystem::copy_file(module, dest, std::filesystem::copy_options::overwrite_existing);
}

/// Sets (or, with nullopt, unsets) an environment variable and restores the
/// previous value when it goes out of scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = ::getenv(name_.c_str())) old_ = old;
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

/// Collects every log record a host writes.
class LogCapture {
 public:
  ordinaut::LogSink sink() {
    return [state = state_](const ordinaut::LogRecord& r) {
      std::lock_guard lock(state->mutex);
      state->records.push_back(r);
    };
  }
  std::vector<ordinaut::LogRecord> records() const {
    std::lock_guard lock(state_->mutex);
    return state_->records;
  }
  std::vector<ordinaut::LogRecord> audits() const {
    std::vector<ordinaut::LogRecord> out;
    for (auto& r : records()) {
      if (r.audit) out.push_back(r);
    }
    return out;
  }
  std::size_t count(const std::string& event, const std::string& extension = {}) const {
    std::size_t n = 0;
    for (auto& r : records()) {
      if (r.event == event && (extension.empty() || r.extension == extension)) ++n;
    }
    return n;
  }

 private:
  struct State {
    std::mutex mutex;
    std::vector<ordinaut::LogRecord> records;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

inline ordinaut::Request make_request(std::string method, std::string path, std::string body = {}) {
  ordinaut::Request r;
  r.method = std::move(method);
  auto q = path.find('?');
  if (q != std::string::npos) {
    r.query_string = path.substr(q + 1);
    path.resize(q);
  }
  r.path = std::move(path);
  r.body = std::move(body);
  r.remote_addr = "127.0.0.1";
  return r;
}

inline ordinaut::Json parse_json(const std::string& text) {
  auto doc = ordinaut::json::parse(text);
  REQUIRE_MESSAGE(doc.ok(), "not JSON: " << text);
  return std::move(doc).value();
}

/// Asserts the error shape {"error": code, "message": ..., "details": {...}}
/// and returns the parsed body.
inline ordinaut::Json expect_error(const ordinaut::Response& r, int status, const std::string& code) {
  CHECK_MESSAGE(r.status == status, "body: " << r.body);
  CHECK(r.headers.get("Content-Type") == "application/json");
  ordinaut::Json doc = parse_json(r.body);
  REQUIRE(doc.IsObject());
  REQUIRE(doc.HasMember("error"));
  CHECK(std::string(doc["error"].GetString()) == code);
  REQUIRE(doc.HasMember("message"));
  CHECK(doc["message"].IsString());
  CHECK(doc["message"].GetStringLength() > 0);
  REQUIRE(doc.HasMember("details"));
  CHECK(doc["details"].IsObject());
  return doc;
}

inline std::string str(const ordinaut::JsonValue& v) {
  REQUIRE(v.IsString());
  return std::string(v.GetString(), v.GetStringLength());
}

}  // namespace test_support
