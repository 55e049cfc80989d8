#include "elf_file.h"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace reuseport::testing {

namespace {

absl::StatusOr<std::string> Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Bounds-checked reads from the file's bytes.
class Bytes {
 public:
  explicit Bytes(const std::string& data) : data_(data) {}
  template <typename T>
  bool Read(uint64_t offset, T* out) const {
    if (offset > data_.size() || data_.size() - offset < sizeof(T)) return false;
    memcpy(out, data_.data() + offset, sizeof(T));
    return true;
  }
  // A NUL-terminated string at offset, within [0, limit).
  bool String(uint64_t offset, uint64_t limit, std::string* out) const {
    if (limit > data_.size() || offset >= limit) return false;
    const char* start = data_.data() + offset;
    const void* nul = memchr(start, '\0', limit - offset);
    if (nul == nullptr) return false;
    *out = std::string(start, static_cast<const char*>(nul));
    return true;
  }
  uint64_t size() const { return data_.size(); }

 private:
  const std::string& data_;
};

}  // namespace

bool IsElf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[SELFMAG] = {};
  return in.read(magic, SELFMAG) && memcmp(magic, ELFMAG, SELFMAG) == 0;
}

absl::StatusOr<ElfFacts> ReadElfFacts(const std::string& path) {
  absl::StatusOr<std::string> data = Slurp(path);
  if (!data.ok()) return data.status();
  Bytes bytes(*data);
  auto bad = [&](const std::string& what) { return absl::InvalidArgumentError(absl::StrCat(path, ": ", what)); };
  Elf64_Ehdr eh;
  if (!bytes.Read(0, &eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return bad("not ELF");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64) {
    return bad("not x86-64 ELF64");
  }
  ElfFacts facts;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!bytes.Read(eh.e_phoff + uint64_t{i} * eh.e_phentsize, &ph)) return bad("truncated program headers");
    if (ph.p_type == PT_INTERP) facts.has_interpreter = true;
    if (ph.p_type == PT_DYNAMIC) facts.has_dynamic = true;
  }
  facts.shared_object = eh.e_type == ET_DYN && !facts.has_interpreter;

  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  for (unsigned i = 0; i < eh.e_shnum; ++i) {
    if (!bytes.Read(eh.e_shoff + uint64_t{i} * eh.e_shentsize, &sections[i])) return bad("truncated section headers");
  }
  auto string_table = [&](uint32_t index, uint64_t* start, uint64_t* end) {
    if (index >= sections.size()) return false;
    *start = sections[index].sh_offset;
    *end = sections[index].sh_offset + sections[index].sh_size;
    return *end <= bytes.size();
  };
  for (const Elf64_Shdr& sh : sections) {
    uint64_t str_start = 0, str_end = 0;
    if (sh.sh_type == SHT_DYNAMIC) {
      if (!string_table(sh.sh_link, &str_start, &str_end)) return bad("bad .dynamic string table");
      for (uint64_t off = sh.sh_offset; off + sizeof(Elf64_Dyn) <= sh.sh_offset + sh.sh_size; off += sizeof(Elf64_Dyn)) {
        Elf64_Dyn d;
        if (!bytes.Read(off, &d)) return bad("truncated .dynamic");
        if (d.d_tag == DT_NULL) break;
        if (d.d_tag == DT_NEEDED) {
          std::string name;
          if (!bytes.String(str_start + d.d_un.d_val, str_end, &name)) return bad("bad DT_NEEDED");
          facts.needed.push_back(name);
        }
      }
    } else if (sh.sh_type == SHT_GNU_verneed) {
      if (!string_table(sh.sh_link, &str_start, &str_end)) return bad("bad .gnu.version_r string table");
      uint64_t off = sh.sh_offset;
      for (uint64_t i = 0; i < sh.sh_info; ++i) {
        Elf64_Verneed vn;
        if (!bytes.Read(off, &vn)) return bad("truncated .gnu.version_r");
        std::string file;
        if (!bytes.String(str_start + vn.vn_file, str_end, &file)) return bad("bad vn_file");
        uint64_t aux = off + vn.vn_aux;
        for (unsigned j = 0; j < vn.vn_cnt; ++j) {
          Elf64_Vernaux va;
          if (!bytes.Read(aux, &va)) return bad("truncated vernaux");
          std::string version;
          if (!bytes.String(str_start + va.vna_name, str_end, &version)) return bad("bad vna_name");
          facts.requirements.push_back({file, version});
          if (va.vna_next == 0) break;
          aux += va.vna_next;
        }
        if (vn.vn_next == 0) break;
        off += vn.vn_next;
      }
    } else if (sh.sh_type == SHT_NOTE) {
      for (uint64_t off = sh.sh_offset; off + sizeof(Elf64_Nhdr) <= sh.sh_offset + sh.sh_size;) {
        Elf64_Nhdr nh;
        if (!bytes.Read(off, &nh)) break;
        uint64_t name_off = off + sizeof(nh);
        uint64_t desc_off = name_off + ((nh.n_namesz + 3) & ~3u);
        if (nh.n_type == NT_GNU_ABI_TAG && nh.n_namesz == 4 && nh.n_descsz >= 16) {
          std::string name;
          uint32_t desc[4];
          if (bytes.String(name_off, name_off + 4, &name) && name == "GNU" && bytes.Read(desc_off, &desc) &&
              desc[0] == ELF_NOTE_OS_LINUX) {
            facts.abi_kernel = absl::StrCat(desc[1], ".", desc[2], ".", desc[3]);
          }
        }
        off = desc_off + ((nh.n_descsz + 3) & ~3u);
      }
    }
  }
  return facts;
}

std::vector<int> GlibcVersion(const std::string& version_name) {
  absl::string_view v = version_name;
  if (!absl::ConsumePrefix(&v, "GLIBC_")) return {0, 0};
  std::vector<int> parts;
  for (absl::string_view p : absl::StrSplit(v, '.')) {
    int n = 0;
    if (!absl::SimpleAtoi(p, &n)) return {0, 0};
    parts.push_back(n);
  }
  return parts;
}

bool VersionAtMost(const std::vector<int>& a, const std::vector<int>& b) {
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    int x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    if (x != y) return x < y;
  }
  return true;
}

}  // namespace reuseport::testing
