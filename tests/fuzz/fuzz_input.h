// FuzzInput: reads a fuzzer's byte string as a sequence of small records, so one input can hold
// several requests or frames. Every read is clamped to what remains (a short input yields
// zeros and empty strings rather than failing), which keeps every byte string meaningful to
// the fuzzer's mutations instead of rejecting most of them.
//
// The record framing the targets share, and that tests/fuzz/make_seeds.cc writes:
//   [u8 tag][u16 little-endian length][length bytes]
//
//   FuzzInput in(data, size);
//   while (!in.empty()) {
//     FuzzInput::Record r = in.NextRecord();
//     Handle(r.tag, r.bytes);
//   }
#ifndef SLUICE_TESTS_FUZZ_FUZZ_INPUT_H_
#define SLUICE_TESTS_FUZZ_FUZZ_INPUT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace sluice {
namespace fuzz {

class FuzzInput {
 public:
  struct Record {
    uint8_t tag = 0;
    absl::string_view bytes;
  };

  FuzzInput(const uint8_t* data, size_t size)
      : data_(reinterpret_cast<const char*>(data)), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }

  uint8_t Byte() {
    if (empty()) return 0;
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint16_t U16() {
    const uint16_t lo = Byte();
    return static_cast<uint16_t>(lo | (Byte() << 8));
  }
  // Up to `n` bytes (fewer at the end of the input).
  absl::string_view Take(size_t n) {
    n = std::min(n, remaining());
    absl::string_view out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  Record NextRecord() {
    Record r;
    r.tag = Byte();
    r.bytes = Take(U16());
    return r;
  }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Appends one record in FuzzInput's framing (for seed generators); `bytes` is cut at 65535.
inline void AppendRecord(uint8_t tag, absl::string_view bytes, std::string* out) {
  const size_t n = std::min<size_t>(bytes.size(), 0xffff);
  out->push_back(static_cast<char>(tag));
  out->push_back(static_cast<char>(n & 0xff));
  out->push_back(static_cast<char>(n >> 8));
  out->append(bytes.data(), n);
}

}  // namespace fuzz
}  // namespace sluice

#endif  // SLUICE_TESTS_FUZZ_FUZZ_INPUT_H_
