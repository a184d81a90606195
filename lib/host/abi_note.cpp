// The ABI note of a module (abi_note.hpp).
#include "host/abi_note.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "ordinaut/extension.hpp"

namespace ordinaut::detail {

namespace {

// This host's e_machine, or 0 where it is not known here (then unchecked).
constexpr std::uint16_t host_machine() {
#if defined(__x86_64__)
  return EM_X86_64;
#elif defined(__aarch64__)
  return EM_AARCH64;
#elif defined(__riscv) && __riscv_xlen == 64
  return EM_RISCV;
#elif defined(__powerpc64__)
  return EM_PPC64;
#elif defined(__s390x__)
  return EM_S390;
#else
  return 0;
#endif
}

constexpr unsigned char host_data_encoding() {
  return std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
}

Error invalid(std::string why) { return make_error("module_invalid", std::move(why)); }

// a + b <= limit, without overflow.
bool fits(std::uint64_t offset, std::uint64_t size, std::uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Printable ASCII of a tag from the file, for messages.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, ORDINAUT_ABI_NOTE_RUNTIME_BYTES)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

// Walks the notes of one SHT_NOTE section's bytes. Sets `found` on the first
// Ordinaut ABI note; a second one must say the same.
Result<void> scan_notes(const std::vector<unsigned char>& bytes, std::uint64_t align, std::optional<ModuleAbi>& found) {
  constexpr std::size_t kNameSize = sizeof(ORDINAUT_ABI_NOTE_NAME);
  const std::uint64_t n = bytes.size();
  std::uint64_t at = 0;
  auto round_up = [align](std::uint64_t v) { return (v + (align - 1)) & ~(align - 1); };
  while (at < n) {
    if (!fits(at, 12, n)) return invalid(fmt::format("a note header at byte {} of a note section is truncated", at));
    const auto namesz = load<std::uint32_t>(bytes.data() + at);
    const auto descsz = load<std::uint32_t>(bytes.data() + at + 4);
    const auto type = load<std::uint32_t>(bytes.data() + at + 8);
    const std::uint64_t name_at = at + 12;
    const std::uint64_t desc_at = name_at + round_up(namesz);  // namesz < 2^32: no overflow
    if (!fits(name_at, namesz, n) || !fits(desc_at, descsz, n)) {
      return invalid(fmt::format("a note at byte {} of a note section is larger than its section", at));
    }
    if (namesz == kNameSize && type == ORDINAUT_ABI_NOTE_TYPE &&
        std::memcmp(bytes.data() + name_at, ORDINAUT_ABI_NOTE_NAME, kNameSize) == 0) {
      if (descsz < 5) return invalid(fmt::format("its ABI note has a descriptor of {} bytes, too short", descsz));
      const unsigned char* desc = bytes.data() + desc_at;
      const std::size_t runtime_bytes = descsz - 4;
      const void* nul = std::memchr(desc + 4, '\0', runtime_bytes);
      if (nul == nullptr) return invalid("its ABI note's C++ runtime tag is not NUL-terminated");
      ModuleAbi abi;
      abi.abi_version = load<std::uint32_t>(desc);
      abi.runtime.assign(reinterpret_cast<const char*>(desc + 4), static_cast<const unsigned char*>(nul) - (desc + 4));
      if (found && (found->abi_version != abi.abi_version || found->runtime != abi.runtime)) {
        return invalid(
            fmt::format("it carries two ABI notes that disagree (ABI version {}, C++ runtime {}; ABI "
                        "version {}, C++ runtime {})",
                        found->abi_version, printable(found->runtime), abi.abi_version, printable(abi.runtime)));
      }
      found = std::move(abi);
    }
    const std::uint64_t next = desc_at + round_up(descsz);
    if (next <= at) return invalid("a note section does not advance");  // unreachable: each note is ≥ 12 bytes
    at = next;
  }
  return {};
}

}  // namespace

Result<ModuleAbi> parse_abi_note(std::uint64_t file_size, const ReadAt& read) {
  unsigned char ident[EI_NIDENT];
  if (file_size < EI_NIDENT || !read(0, EI_NIDENT, ident) || std::memcmp(ident, ELFMAG, SELFMAG) != 0) {
    return invalid("it is not an ELF file (no ELF magic number)");
  }
  if (ident[EI_CLASS] != ELFCLASS64) {
    return invalid(ident[EI_CLASS] == ELFCLASS32 ? "it is a 32-bit ELF file; this host loads 64-bit modules"
                                                 : "its ELF class is unknown");
  }
  if (ident[EI_DATA] != host_data_encoding()) {
    return invalid("its byte order is not this host's: it was built for another machine");
  }
  if (file_size < sizeof(Elf64_Ehdr)) return invalid("its ELF header is truncated");
  unsigned char header_bytes[sizeof(Elf64_Ehdr)];
  if (!read(0, sizeof header_bytes, header_bytes)) return invalid("its ELF header cannot be read");
  const auto header = load<Elf64_Ehdr>(header_bytes);
  if (header.e_type != ET_DYN) {
    return invalid(fmt::format("it is an ELF file of type {}, not a shared object (ET_DYN)", header.e_type));
  }
  if (constexpr std::uint16_t machine = host_machine(); machine != 0 && header.e_machine != machine) {
    return invalid(fmt::format("it was built for ELF machine {}, this host is machine {}", header.e_machine, machine));
  }
  if (header.e_shoff == 0) {
    return make_error("abi_note_missing",
                      "it has no section headers, so no ABI note (section " ORDINAUT_ABI_NOTE_SECTION ")");
  }
  if (header.e_shentsize != sizeof(Elf64_Shdr)) {
    return invalid(fmt::format("its section header size is {}, not {}", header.e_shentsize, sizeof(Elf64_Shdr)));
  }
  if (!fits(header.e_shoff, sizeof(Elf64_Shdr), file_size)) {
    return invalid("its section header table lies past the end of the file (truncated?)");
  }
  std::uint64_t count = header.e_shnum;
  if (count == 0) {  // more than SHN_LORESERVE sections: the count is in section 0's sh_size
    unsigned char first[sizeof(Elf64_Shdr)];
    if (!read(header.e_shoff, sizeof first, first)) return invalid("its first section header cannot be read");
    count = load<Elf64_Shdr>(first).sh_size;
  }
  if (count > kMaxSections) {
    return invalid(fmt::format("it claims {} sections, more than the {} a module may have", count, kMaxSections));
  }
  const std::uint64_t table_bytes = count * sizeof(Elf64_Shdr);  // ≤ 4096 × 64: no overflow
  if (!fits(header.e_shoff, table_bytes, file_size)) {
    return invalid("its section header table lies past the end of the file (truncated?)");
  }
  std::vector<unsigned char> table(table_bytes);
  if (table_bytes > 0 && !read(header.e_shoff, table.size(), table.data())) {
    return invalid("its section header table cannot be read");
  }
  std::optional<ModuleAbi> found;
  std::uint64_t note_bytes = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto section = load<Elf64_Shdr>(table.data() + i * sizeof(Elf64_Shdr));
    if (section.sh_type != SHT_NOTE || section.sh_size == 0) continue;
    if (section.sh_size > kMaxNoteBytes) {
      return invalid(fmt::format("note section {} has {} bytes, more than {}", i, section.sh_size, kMaxNoteBytes));
    }
    if (!fits(section.sh_offset, section.sh_size, file_size)) {
      return invalid(fmt::format("note section {} lies past the end of the file (truncated?)", i));
    }
    note_bytes += section.sh_size;
    if (note_bytes > kMaxTotalNoteBytes) {
      return invalid(fmt::format("its note sections hold more than {} bytes", kMaxTotalNoteBytes));
    }
    std::vector<unsigned char> bytes(section.sh_size);
    if (!read(section.sh_offset, bytes.size(), bytes.data())) {
      return invalid(fmt::format("note section {} cannot be read", i));
    }
    // As readelf: notes are 4-byte aligned unless the section says 8.
    if (auto scanned = scan_notes(bytes, section.sh_addralign == 8 ? 8 : 4, found); !scanned) return scanned.error();
  }
  if (!found) {
    return make_error("abi_note_missing", "it carries no Ordinaut ABI note (section " ORDINAUT_ABI_NOTE_SECTION ")");
  }
  return *found;
}

Result<ModuleAbi> read_abi_note(const std::filesystem::path& module) {
  // Non-blocking: a FIFO put where the module was expected must not hang
  // discovery; fstat then refuses anything but a regular file.
  const int fd = ::open(module.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    return make_error("module_not_found",
                      fmt::format("module file {} cannot be opened: {}", module.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error("module_not_found", fmt::format("module file {} is not a regular file", module.string()));
  }
  ReadAt read = [fd](std::uint64_t offset, std::size_t size, unsigned char* out) {
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return false;
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // error, or the file shrank
      done += static_cast<std::size_t>(n);
    }
    return true;
  };
  auto abi = parse_abi_note(static_cast<std::uint64_t>(st.st_size), read);
  ::close(fd);
  return abi;
}

Result<void> check_module_abi(const std::filesystem::path& module) {
  auto abi = read_abi_note(module);
  if (!abi) {
    const Error& e = abi.error();
    if (e.code == "module_not_found") return e;
    if (e.code == "abi_note_missing") {
      return make_error(e.code, fmt::format("module {} cannot be checked before loading: {}. Build it with "
                                            "ORDINAUT_EXTENSION(YourClass) against this host's headers (extension "
                                            "ABI version {}, C++ runtime {})",
                                            module.string(), e.message, ORDINAUT_ABI_VERSION, ORDINAUT_STDLIB_ID));
    }
    return make_error(e.code,
                      fmt::format("module {} is not a loadable extension module: {}", module.string(), e.message));
  }
  if (abi->abi_version != ORDINAUT_ABI_VERSION) {
    return make_error("abi_mismatch",
                      fmt::format("module {} was built for extension ABI version {} (C++ runtime {}), this host "
                                  "provides ABI version {} (C++ runtime {}); rebuild the module against this host's "
                                  "headers",
                                  module.string(), abi->abi_version, printable(abi->runtime), ORDINAUT_ABI_VERSION,
                                  ORDINAUT_STDLIB_ID));
  }
  if (abi->runtime != ORDINAUT_STDLIB_ID) {
    return make_error("abi_mismatch",
                      fmt::format("module {} was built with C++ runtime {}, this host uses {} (both at extension ABI "
                                  "version {}); rebuild the module with this host's compiler and standard library",
                                  module.string(), printable(abi->runtime), ORDINAUT_STDLIB_ID, ORDINAUT_ABI_VERSION));
  }
  return {};
}

}  // namespace ordinaut::detail
