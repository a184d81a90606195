// The ABI note of an extension module, read from the file without loading it
// (internal). A module built with ORDINAUT_EXTENSION carries an ELF note
// (section .note.ordinaut, name "Ordinaut", type 1) holding the ABI version and
// the C++ runtime tag it was built with (ordinaut::AbiNote). The catalog reads
// it at discovery, and the module loader again right before dlopen, so a
// module of another ABI is refused before any of its code runs (dlopen runs
// its constructors) and a lazy one shows `error` at once.
//
// The file is untrusted input: only the ELF header, the section header table
// and SHT_NOTE sections are read, each bounded (kMaxSections, kMaxNoteBytes),
// with every offset and size checked against the file's length before use.
//
// Thread safety: the functions share no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "ordinaut/result.hpp"

namespace ordinaut::detail {

struct ModuleAbi {
  std::uint32_t abi_version = 0;
  std::string runtime;  // ORDINAUT_STDLIB_ID of the module's build
};

inline constexpr std::uint64_t kMaxSections = 4096;               // a linked module has a few dozen
inline constexpr std::uint64_t kMaxNoteBytes = 64 * 1024;         // per SHT_NOTE section
inline constexpr std::uint64_t kMaxTotalNoteBytes = 1024 * 1024;  // over all of them

// Copies `size` bytes at `offset` of the file into `out`; false when it
// cannot (past the end, I/O error). The parser checks bounds itself first.
using ReadAt = std::function<bool(std::uint64_t offset, std::size_t size, unsigned char* out)>;

// Finds the ABI note in an ELF file of `file_size` bytes read through `read`.
// The file must be a 64-bit ELF shared object for this host's byte order and
// machine. Error codes: "module_invalid" (not ELF, another class, byte order,
// machine or file type, truncated or malformed headers, notes or two notes
// that disagree; the message says which), "abi_note_missing".
Result<ModuleAbi> parse_abi_note(std::uint64_t file_size, const ReadAt& read);

// parse_abi_note() of a file (opened read-only and non-blocking; it must be a
// regular file). Error codes as parse_abi_note(), plus "module_not_found".
Result<ModuleAbi> read_abi_note(const std::filesystem::path& module);

// read_abi_note(), then compares with this host's ORDINAUT_ABI_VERSION and
// ORDINAUT_STDLIB_ID. Errors as read_abi_note() (messages name the module),
// plus "abi_mismatch" naming both ABI versions and both C++ runtimes.
Result<void> check_module_abi(const std::filesystem::path& module);

}  // namespace ordinaut::detail
