#pragma once
// Batched Lloyd k-means over token vectors: the Semantic-Aware Smoothing stage of QVG.
//
// Deterministic by construction: the initial centroids are distinct tokens drawn from a private
// seeded stream (or the previous span's codebook: warm start), assignment ties go to the lowest
// centroid index, and centroid sums are reduced in a fixed order (index_add on the CPU, the same
// sequential token order in the CUDA update kernel; never float atomics). On CUDA the whole
// loop runs in the kernels of kernels/qvg_encode.h (distances on tensor cores with the argmin
// fused; initialisation and reseeding of empty clusters on the device) without waiting for the
// device.

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace qvg::core {

struct KMeansOptions {
    int64_t centroids = 256;           // at most 256: ids are stored as uint8
    int iterations = 2;                // Lloyd iterations (assign + update)
    double converged_fraction = 1e-4;  // stop early when fewer assignments change
    uint64_t seed = 0;
    bool final_assign = true;  // reassign to the final centroids (never worse)
    // > 0: the groups come in items of this many (the heads of each walk of a batch): every
    // item draws its first centroids as it would alone (group g from the stream of
    // g % groups_per_item) and stops early on its own: an item that has converged keeps its
    // centroids while the others go on. So each item's result is what it would be alone.
    int64_t groups_per_item = 0;
};

struct KMeansResult {
    at::Tensor ids;        // uint8 [G, N]
    at::Tensor centroids;  // bf16 [G, C, D]
    int iterations_run = 0;
};

// x: [G, N, D] floating with BF16-representable values (the codec's inputs always are: BF16
// spans and BF16-rounded residuals), any device; pass BF16 on CUDA to avoid a conversion.
// warm_start: optional bf16/float [G, C, D] codebook to start from instead of random tokens.
// Throws qvg::core::Error when centroids > N or centroids > 256 or on bad shapes.
KMeansResult kmeans(const at::Tensor& x, const KMeansOptions& options,
                    const at::Tensor& warm_start = {});

// The starting centroids: C distinct tokens of every group of x [G, N, D], drawn from the seed
// (the codec's private stream, group g from mix(seed, g), or mix(seed, g % seed_period) when
// seed_period > 0), as bf16 [G, C, D]. On CUDA with BF16 x the draws run on the device (same
// tokens).
at::Tensor kmeans_init(const at::Tensor& x, int64_t centroids, uint64_t seed,
                       int64_t seed_period = 0);

// The early stop of kmeans() (CPU and CUDA paths alike), per item of groups_per_item groups
// (0: all groups together). Each iteration: observe() the assignments before and after it,
// keep() the centroids of items that had already converged, then stop once finished().
class KMeansStop {
  public:
    explicit KMeansStop(const KMeansOptions& options) : options_(options) {}
    // Notes the items that changed fewer than converged_fraction of their assignments between
    // `previous` and `next` [G, N] at iteration `it` (not checked on the last iteration, where
    // it changes nothing: saves a device sync; nor without previous ids).
    void observe(const at::Tensor& previous, const at::Tensor& next, int it);
    // Whether any item has converged before this iteration (its centroids must be kept).
    bool holding() const { return done_.defined(); }
    // `updated` centroids [G, C, D] with those of converged items taken from `before`.
    at::Tensor keep(const at::Tensor& before, const at::Tensor& updated) const;
    // Counts this iteration's convergence; true once every item has converged.
    bool finished();

  private:
    const KMeansOptions& options_;
    at::Tensor done_;     // [G] groups whose item converged in an earlier iteration
    at::Tensor pending_;  // [G] this iteration's convergence
};

// Nearest centroid (squared L2) for every token: int64 [G, N]. centroids [G, C, D].
at::Tensor assign_nearest(const at::Tensor& x, const at::Tensor& centroids);
// Same, with each token's squared distance to that centroid (fp32 [G, N]).
std::pair<at::Tensor, at::Tensor> assign_nearest_with_distance(const at::Tensor& x,
                                                               const at::Tensor& centroids);

// One Lloyd update: each centroid becomes the fp32 mean of its members (summed in token order,
// on the CPU and in the CUDA kernel alike), rounded to bf16; empty clusters keep their value.
// x [G, N, D] with BF16-representable values (fp32 or bf16), ids int64 [G, N], old [G, C, D].
at::Tensor kmeans_update(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& old);

// Empty clusters (wasted codebook entries, common after a warm start) take over the tokens
// farthest from their centroids: the k-th empty cluster of a group the k-th farthest token
// (stable order). dist [G, N] is each token's squared distance to its assigned centroid.
at::Tensor kmeans_reseed_empty(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& dist,
                               const at::Tensor& cent);

// Sum of squared distances to the assigned centroids (the k-means objective), in double.
double kmeans_inertia(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& centroids);

// Benchmarks only: the CUDA k-means (initialisation, assignment, update) runs the previous
// kernels while set (qvg kernel-bench times old against new in one run). Same results either
// way; process-wide, off by default.
void set_kmeans_legacy_kernels(bool legacy);
bool kmeans_legacy_kernels();

}  // namespace qvg::core
