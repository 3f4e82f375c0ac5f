#include "runtime/session/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/crc32c.h"
#include "core/status.h"
#include "ops/state_ops.h"

namespace sluice {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "checkpoints store raw little-endian bytes; add byte swapping for this target");

constexpr char kMagic[8] = {'S', 'L', 'U', 'I', 'C', 'E', 'C', 'K'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;  // magic, version, entry count, file size
constexpr size_t kFooterBytes = 4;              // CRC-32C
constexpr uint32_t kMaxRank = 64;

std::string ErrnoText(int err) { return std::strerror(err); }

// What the graph declares about one variable.
struct VariableInfo {
  DType dtype;
  TensorShape shape;
};

std::map<std::string, VariableInfo> GraphVariables(const Graph& graph) {
  std::map<std::string, VariableInfo> vars;
  for (int id = 0; id < graph.num_nodes(); ++id) {
    const Node* n = graph.node(id);
    if (n->op() != "Variable") continue;
    // Write handles repeat their variable's dtype and shape; the first node wins.
    vars.emplace(VariableNameOf(*n),
                 VariableInfo{n->output_type(0), n->GetAttr<TensorShape>("shape").value_or(
                                                     TensorShape::UnknownRank())});
  }
  return vars;
}

// ------------------------------------------------------------------------------------------
// Writing

// Buffered writes to a file descriptor that also extend a running CRC-32C.
class Writer {
 public:
  explicit Writer(int fd) : fd_(fd) { buffer_.reserve(kBufferBytes); }

  void Put(const void* data, size_t n) {
    crc_ = Crc32cExtend(crc_, data, n);
    PutRaw(data, n);
  }
  template <typename T>
  void PutInt(T v) {
    Put(&v, sizeof(v));
  }
  // Writes the CRC of everything so far (not itself covered), then flushes.
  absl::Status Finish() {
    const uint32_t crc = crc_;
    PutRaw(&crc, sizeof(crc));
    Flush();
    return status_;
  }

 private:
  static constexpr size_t kBufferBytes = 1 << 20;

  void PutRaw(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    if (buffer_.size() + n > kBufferBytes) {
      Flush();
      if (n >= kBufferBytes) {
        WriteAll(p, n);
        return;
      }
    }
    buffer_.append(p, n);
  }
  void Flush() {
    WriteAll(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  void WriteAll(const char* p, size_t n) {
    while (n > 0 && status_.ok()) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        status_ = absl::InternalError(absl::StrCat("write failed: ", ErrnoText(errno)));
        return;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  int fd_;
  std::string buffer_;
  uint32_t crc_ = 0;
  absl::Status status_;
};

uint64_t EntryBytes(const std::string& name, const Tensor& t) {
  return 4 + name.size() + 4 + 4 + 8 * t.rank() + 8 + t.TotalBytes();
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::vector<std::pair<std::string, Tensor>>& entries) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp-", ::getpid(), "-", counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create checkpoint file '", tmp, "': ", ErrnoText(errno)));
  }
  auto fail = [&](absl::Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::Status(s.code(), absl::StrCat("saving checkpoint '", path, "': ", s.message()));
  };
  uint64_t file_bytes = kHeaderBytes + kFooterBytes;
  for (const auto& [name, t] : entries) file_bytes += EntryBytes(name, t);

  Writer w(fd);
  w.Put(kMagic, sizeof(kMagic));
  w.PutInt<uint32_t>(kVersion);
  w.PutInt<uint32_t>(static_cast<uint32_t>(entries.size()));
  w.PutInt<uint64_t>(file_bytes);
  for (const auto& [name, t] : entries) {
    w.PutInt<uint32_t>(static_cast<uint32_t>(name.size()));
    w.Put(name.data(), name.size());
    w.PutInt<uint32_t>(static_cast<uint32_t>(t.dtype()));
    w.PutInt<uint32_t>(static_cast<uint32_t>(t.rank()));
    for (int i = 0; i < t.rank(); ++i) w.PutInt<int64_t>(t.dim(i));
    w.PutInt<uint64_t>(t.TotalBytes());
    if (t.TotalBytes() > 0) w.Put(t.raw_data(), t.TotalBytes());
  }
  if (absl::Status ws = w.Finish(); !ws.ok()) return fail(ws);
  if (::fsync(fd) != 0) return fail(absl::InternalError(absl::StrCat("fsync: ", ErrnoText(errno))));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("saving checkpoint '", path, "': close: ", ErrnoText(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("saving checkpoint '", path, "': rename: ", ErrnoText(err)));
  }
  // Make the rename itself durable.
  const std::string dir = DirectoryOf(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return absl::InternalError(absl::StrCat("saving checkpoint '", path, "': opening directory '",
                                            dir, "': ", ErrnoText(errno)));
  }
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("saving checkpoint '", path, "': fsync of the directory: ", ErrnoText(err)));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------------------------------
// Reading

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = absl::StrCat("cannot open checkpoint '", path, "': ", ErrnoText(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::InternalError(msg);
  }
  std::string data;
  char buf[1 << 16];
  while (true) {
    const ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("reading checkpoint '", path, "': ", ErrnoText(err)));
    }
    if (r == 0) break;
    data.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return data;
}

// Bounds-checked little-endian reads from the checked file contents.
class Reader {
 public:
  Reader(const std::string& data, size_t end) : data_(data), end_(end) {}
  bool Get(void* out, size_t n) {
    if (end_ - pos_ < n) return false;
    std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  template <typename T>
  bool GetInt(T* v) {
    return Get(v, sizeof(T));
  }
  const char* Take(size_t n) {
    if (end_ - pos_ < n) return nullptr;
    const char* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  size_t pos() const { return pos_; }
  bool done() const { return pos_ == end_; }

 private:
  const std::string& data_;
  const size_t end_;
  size_t pos_ = 0;
};

absl::Status Corrupt(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("checkpoint '", path, "' is corrupted: ", what));
}

absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> ParseCheckpoint(
    const std::string& path, const std::string& data) {
  if (data.size() < kHeaderBytes + kFooterBytes) {
    return absl::DataLossError(absl::StrCat("checkpoint '", path, "' is truncated: ", data.size(),
                                            " bytes, shorter than a header"));
  }
  if (std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(
        absl::StrCat("'", path, "' is not a Sluice checkpoint (bad magic bytes)"));
  }
  Reader header(data, kHeaderBytes);
  header.Take(sizeof(kMagic));
  uint32_t version = 0, count = 0;
  uint64_t file_bytes = 0;
  header.GetInt(&version);
  header.GetInt(&count);
  header.GetInt(&file_bytes);
  if (version != kVersion) {
    return absl::DataLossError(absl::StrCat("checkpoint '", path, "' has format version ", version,
                                            "; this build reads version ", kVersion));
  }
  if (file_bytes != data.size()) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint '", path, "' is ", file_bytes > data.size() ? "truncated" : "too long",
        ": its header says ", file_bytes, " bytes, the file has ", data.size()));
  }
  const size_t body_end = data.size() - kFooterBytes;
  uint32_t stored = 0;
  std::memcpy(&stored, data.data() + body_end, sizeof(stored));
  const uint32_t computed = Crc32c(data.data(), body_end);
  if (stored != computed) {
    return Corrupt(path, absl::StrFormat("checksum mismatch (stored 0x%08x, computed 0x%08x)",
                                         stored, computed));
  }

  // The checksum matched; still check every length, so a file written wrongly cannot make the
  // reader go out of bounds.
  Reader r(data, body_end);
  r.Take(kHeaderBytes);
  std::vector<std::pair<std::string, Tensor>> entries;
  for (uint32_t e = 0; e < count; ++e) {
    const std::string where = absl::StrCat("entry ", e);
    uint32_t name_len = 0, dtype_v = 0, rank = 0;
    if (!r.GetInt(&name_len)) return Corrupt(path, absl::StrCat(where, " is cut short"));
    const char* name_p = r.Take(name_len);
    if (name_p == nullptr || name_len == 0) {
      return Corrupt(path, absl::StrCat(where, " has a bad name length ", name_len));
    }
    std::string name(name_p, name_len);
    const std::string shown = absl::CHexEscape(name);  // Names in errors stay printable.
    if (!entries.empty() && entries.back().first >= name) {
      return Corrupt(path, absl::StrCat("entry '", shown, "' is out of order or repeated"));
    }
    if (!r.GetInt(&dtype_v) || !r.GetInt(&rank)) {
      return Corrupt(path, absl::StrCat("entry '", shown, "' is cut short"));
    }
    const DType dtype = static_cast<DType>(dtype_v);
    if (DTypeSize(dtype) == 0 || dtype_v > static_cast<uint32_t>(DType::kBool)) {
      return Corrupt(path, absl::StrCat("entry '", shown, "' has unknown dtype ", dtype_v));
    }
    if (rank > kMaxRank) {
      return Corrupt(path, absl::StrCat("entry '", shown, "' has rank ", rank));
    }
    std::vector<int64_t> dims(rank);
    uint64_t elements = 1;
    for (uint32_t i = 0; i < rank; ++i) {
      if (!r.GetInt(&dims[i]) || dims[i] < 0) {
        return Corrupt(path, absl::StrCat("entry '", shown, "' has a bad dimension"));
      }
      if (dims[i] != 0 && elements > (uint64_t{1} << 62) / static_cast<uint64_t>(dims[i])) {
        return Corrupt(path, absl::StrCat("entry '", shown, "' is impossibly large"));
      }
      elements *= static_cast<uint64_t>(dims[i]);
    }
    uint64_t bytes = 0;
    if (!r.GetInt(&bytes) || bytes != elements * DTypeSize(dtype)) {
      return Corrupt(path, absl::StrCat("entry '", shown, "' has ", bytes,
                                        " data bytes for its shape and dtype"));
    }
    const char* p = r.Take(bytes);
    if (p == nullptr) return Corrupt(path, absl::StrCat("entry '", shown, "' is cut short"));
    Tensor t(dtype, TensorShape(absl::Span<const int64_t>(dims)));
    if (bytes > 0) std::memcpy(t.raw_data(), p, bytes);
    if (dtype == DType::kBool) {
      for (uint64_t i = 0; i < bytes; ++i) {
        if (static_cast<unsigned char>(p[i]) > 1) {
          return Corrupt(path, absl::StrCat("entry '", shown, "' has a bool that is not 0 or 1"));
        }
      }
    }
    entries.emplace_back(std::move(name), std::move(t));
  }
  if (!r.done()) {
    return Corrupt(path, absl::StrCat(body_end - r.pos(), " unexpected bytes after the entries"));
  }
  return entries;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> ReadCheckpoint(
    const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
  return ParseCheckpoint(path, data);
}

absl::StatusOr<std::vector<std::string>> VariablesToSave(const Graph& graph,
                                                         const std::string& path,
                                                         const std::vector<std::string>& names) {
  const std::map<std::string, VariableInfo> vars = GraphVariables(graph);
  if (names.empty()) {
    std::vector<std::string> all;
    for (const auto& [name, info] : vars) all.push_back(name);
    return all;
  }
  std::set<std::string> unique;  // A name given twice is saved once.
  for (const std::string& name : names) {
    if (vars.find(name) == vars.end()) {
      return absl::NotFoundError(
          absl::StrCat("saving checkpoint '", path, "': no variable '", name, "' in the graph"));
    }
    unique.insert(name);
  }
  return std::vector<std::string>(unique.begin(), unique.end());
}

absl::Status WriteCheckpoint(const std::string& path,
                             std::vector<std::pair<std::string, Tensor>> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].first == entries[i - 1].first) {
      return absl::InvalidArgumentError(absl::StrCat("saving checkpoint '", path, "': variable '",
                                                     entries[i].first, "' given twice"));
    }
  }
  return WriteFileAtomically(path, entries);
}

absl::Status SaveVariables(const Graph& graph, ResourceMgr& resources, const std::string& path,
                           const std::vector<std::string>& names) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> wanted, VariablesToSave(graph, path, names));
  std::vector<std::pair<std::string, Tensor>> entries;
  for (const std::string& name : wanted) {
    std::shared_ptr<Variable> var = resources.LookupVariable(name);
    Tensor value;
    bool initialized = false;
    if (var != nullptr) {
      absl::ReaderMutexLock lock(&var->mu);
      initialized = var->initialized;
      value = var->value;  // Shares the buffer; updates copy while it is held.
    }
    if (!initialized) {
      return absl::FailedPreconditionError(absl::StrCat("saving checkpoint '", path,
                                                        "': variable '", name,
                                                        "' is not initialized; nothing was saved"));
    }
    entries.emplace_back(name, std::move(value));
  }
  return WriteCheckpoint(path, std::move(entries));
}

absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> ReadCheckpointForRestore(
    const Graph& graph, const std::string& path, const std::vector<std::string>& names) {
  SLUICE_ASSIGN_OR_RETURN(auto entries, ReadCheckpoint(path));
  std::map<std::string, Tensor> in_file(entries.begin(), entries.end());
  const std::map<std::string, VariableInfo> vars = GraphVariables(graph);
  const std::string context = absl::StrCat("restoring checkpoint '", path, "': ");

  std::vector<std::string> wanted = names;
  if (wanted.empty()) {
    for (const auto& [name, t] : in_file) {
      if (vars.find(name) == vars.end()) {
        return absl::InvalidArgumentError(absl::StrCat(context, "checkpoint variable '", name,
                                                       "' is not a variable of the graph"));
      }
    }
    for (const auto& [name, info] : vars) wanted.push_back(name);
  }
  std::vector<std::pair<std::string, Tensor>> selected;
  for (const std::string& name : wanted) {
    auto v = vars.find(name);
    if (v == vars.end()) {
      return absl::NotFoundError(absl::StrCat(context, "no variable '", name, "' in the graph"));
    }
    auto f = in_file.find(name);
    if (f == in_file.end()) {
      return absl::NotFoundError(
          absl::StrCat(context, "the checkpoint has no variable '", name, "'"));
    }
    const Tensor& t = f->second;
    if (t.dtype() != v->second.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "variable '", name, "' is ", DTypeName(v->second.dtype),
                       " in the graph but ", DTypeName(t.dtype()), " in the checkpoint"));
    }
    if (!v->second.shape.IsCompatibleWith(t.shape())) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "variable '", name, "' has shape ", v->second.shape.DebugString(),
                       " in the graph but ", t.shape().DebugString(), " in the checkpoint"));
    }
    selected.emplace_back(name, t);
  }
  return selected;
}

absl::Status RestoreVariables(const Graph& graph, ResourceMgr& resources, const std::string& path,
                              const std::vector<std::string>& names) {
  // Everything is checked before any variable is touched.
  SLUICE_ASSIGN_OR_RETURN(auto selected, ReadCheckpointForRestore(graph, path, names));
  for (auto& [name, value] : selected) {
    std::shared_ptr<Variable> var = resources.LookupOrCreateVariable(name);
    absl::MutexLock lock(&var->mu);
    var->value = std::move(value);  // A fresh buffer that nothing else holds.
    var->initialized = true;
    ++var->initializations;
  }
  return absl::OkStatus();
}

absl::Status SaveCheckpoint(Session& session, const std::string& path,
                            const std::vector<std::string>& names) {
  return SaveVariables(session.graph(), *session.device()->resources(), path, names);
}

absl::Status RestoreCheckpoint(Session& session, const std::string& path,
                               const std::vector<std::string>& names) {
  return RestoreVariables(session.graph(), *session.device()->resources(), path, names);
}

}  // namespace sluice
