// Matrix Market reader: the coordinate format (real, integer or pattern;
// general or symmetric) into a validated square CSR matrix for sor.
// Every error is INVALID_ARGUMENT naming the field and the line.
// Stateless functions, safe from any thread.
#ifndef SOLVERD_SERVER_FAMILIES_SOR_MATRIX_MARKET_H_
#define SOLVERD_SERVER_FAMILIES_SOR_MATRIX_MARKET_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sor/csr.h"

namespace solverd::server {

// Matrices larger than this many stored entries are refused.
inline constexpr int64_t kMaxMatrixMarketEntries = int64_t{200} << 20;

absl::StatusOr<::solverd::sor::CsrMatrix> ParseMatrixMarket(absl::string_view text,
                                                            absl::string_view field);

}  // namespace solverd::server

#endif  // SOLVERD_SERVER_FAMILIES_SOR_MATRIX_MARKET_H_
