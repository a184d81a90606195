// `meson install --destdir` of this build into a temporary folder, as the
// install and scaffold tests use it: where the staged binaries and libraries
// are, and the environment that makes them usable from there.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "../support/support.hpp"
#include "common.hpp"

namespace server_test {

class StagedInstall {
 public:
  /// Installs the build (ORDINAUT_BUILD_ROOT, already built) under a new
  /// temporary DESTDIR; REQUIREs that `meson install` succeeds.
  StagedInstall() {
    auto install = run_to_end(env_or_throw("ORDINAUT_MESON"),
                              {"install", "-C", env_or_throw("ORDINAUT_BUILD_ROOT"), "--destdir",
                               dest_.path().string(), "--no-rebuild", "--quiet"},
                              dest_.path() / "install.out", dest_.path() / "install.err", 300s);
    INFO(read_text(dest_.path() / "install.err"));
    REQUIRE(install.code == 0);
    prefix_ = dest_.path() / std::filesystem::path(env_or_throw("ORDINAUT_PREFIX")).relative_path();
  }

  /// The DESTDIR: what PKG_CONFIG_SYSROOT_DIR must name.
  const std::filesystem::path& destdir() const { return dest_.path(); }
  std::filesystem::path bindir() const { return prefix_ / env_or_throw("ORDINAUT_BINDIR"); }
  std::filesystem::path libdir() const { return prefix_ / env_or_throw("ORDINAUT_LIBDIR"); }

  /// The staged binaries' run path names the final prefix: the loader must be
  /// pointed at the staged libdir.
  std::vector<std::pair<std::string, std::string>> runtime_env() const {
    return {{"LD_LIBRARY_PATH", libdir().string()}};
  }

  /// What a build against the staged library needs: pkg-config finds
  /// ordinaut.pc in the staged libdir and prefixes its paths with DESTDIR.
  std::vector<std::pair<std::string, std::string>> build_env() const {
    auto env = runtime_env();
    env.emplace_back("PKG_CONFIG_PATH", (libdir() / "pkgconfig").string());
    env.emplace_back("PKG_CONFIG_SYSROOT_DIR", destdir().string());
    return env;
  }

 private:
  test_support::TempDir dest_;
  std::filesystem::path prefix_;
};

}  // namespace server_test
