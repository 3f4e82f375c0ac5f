// CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78): the checksum that guards
// checkpoint files (runtime/session/checkpoint.h). Table-driven, eight bytes per step ("slicing by
// 8"); no hardware instructions, so it computes the same value on every machine. Thread-safe:
// stateless (the tables are built once, at first use).
//
//   uint32_t crc = Crc32c("123456789", 9);              // 0xE3069283
//   uint32_t c = Crc32cExtend(0, part1.data(), part1.size());
//   c = Crc32cExtend(c, part2.data(), part2.size());    // == Crc32c of part1 + part2
#ifndef SLUICE_CORE_CRC32C_H_
#define SLUICE_CORE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace sluice {

// The CRC-32C of `crc`'s message followed by data[0, n). Crc32cExtend(0, ...) starts a message.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

}  // namespace sluice

#endif  // SLUICE_CORE_CRC32C_H_
