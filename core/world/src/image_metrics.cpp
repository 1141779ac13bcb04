#include <qvg/world/image_metrics.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace qvg::world {
namespace {

constexpr double kPeak = 255.0;
constexpr double kC1 = (0.01 * kPeak) * (0.01 * kPeak);
constexpr double kC2 = (0.03 * kPeak) * (0.03 * kPeak);

// The 1-D factor of the separable 11x11 window, normalised so the 2-D window sums to 1.
std::array<double, kSsimWindow> gaussian_taps() {
    std::array<double, kSsimWindow> taps{};
    double sum = 0.0;
    for (int i = 0; i < kSsimWindow; ++i) {
        const double d = i - kSsimWindow / 2;
        taps[static_cast<std::size_t>(i)] = std::exp(-d * d / (2.0 * kSsimSigma * kSsimSigma));
        sum += taps[static_cast<std::size_t>(i)];
    }
    for (double& t : taps) t /= sum;
    return taps;
}

// "Valid" filtering of a [height, width] image with the separable window: rows first, then
// columns. Output [height - 10, width - 10].
std::vector<double> filter_valid(const std::vector<double>& in, int width, int height) {
    static const std::array<double, kSsimWindow> taps = gaussian_taps();
    const int ow = width - kSsimWindow + 1, oh = height - kSsimWindow + 1;
    std::vector<double> rows(static_cast<std::size_t>(ow) * static_cast<std::size_t>(height));
    for (int y = 0; y < height; ++y) {
        const double* src =
            in.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(width);
        double* dst = rows.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(ow);
        for (int x = 0; x < ow; ++x) {
            double s = 0.0;
            for (int k = 0; k < kSsimWindow; ++k)
                s += taps[static_cast<std::size_t>(k)] * src[x + k];
            dst[x] = s;
        }
    }
    std::vector<double> out(static_cast<std::size_t>(ow) * static_cast<std::size_t>(oh));
    for (int y = 0; y < oh; ++y) {
        for (int x = 0; x < ow; ++x) {
            double s = 0.0;
            for (int k = 0; k < kSsimWindow; ++k) {
                s += taps[static_cast<std::size_t>(k)] *
                     rows[static_cast<std::size_t>(y + k) * static_cast<std::size_t>(ow) +
                          static_cast<std::size_t>(x)];
            }
            out[static_cast<std::size_t>(y) * static_cast<std::size_t>(ow) +
                static_cast<std::size_t>(x)] = s;
        }
    }
    return out;
}

void check_sizes(std::size_t a, std::size_t b, std::size_t expected, int width, int height,
                 const char* what) {
    if (width < kSsimWindow || height < kSsimWindow) {
        throw std::invalid_argument(std::string(what) + ": a " + std::to_string(width) + "x" +
                                    std::to_string(height) + " image is smaller than the " +
                                    std::to_string(kSsimWindow) + "x" +
                                    std::to_string(kSsimWindow) + " window");
    }
    if (a != expected || b != expected) {
        throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(expected) +
                                    " values for " + std::to_string(width) + "x" +
                                    std::to_string(height) + ", found " + std::to_string(a) +
                                    " and " + std::to_string(b));
    }
}

}  // namespace

double mean_squared_error(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    if (a.size() != b.size() || a.empty()) {
        throw std::invalid_argument(
            "mean_squared_error: expected two non-empty arrays of one length, found " +
            std::to_string(a.size()) + " and " + std::to_string(b.size()) + " bytes");
    }
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const int d = static_cast<int>(a[i]) - static_cast<int>(b[i]);
        sum += static_cast<std::uint64_t>(d * d);
    }
    return static_cast<double>(sum) / static_cast<double>(a.size());
}

double psnr_from_mse(double mse) {
    if (!(mse > 0.0)) return kMaxPsnrDb;
    return std::min(kMaxPsnrDb, 10.0 * std::log10(kPeak * kPeak / mse));
}

double psnr(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    return psnr_from_mse(mean_squared_error(a, b));
}

double ssim_gray(std::span<const double> a, std::span<const double> b, int width, int height) {
    check_sizes(a.size(), b.size(),
                static_cast<std::size_t>(std::max(width, 0)) *
                    static_cast<std::size_t>(std::max(height, 0)),
                width, height, "ssim");
    const std::size_t n = a.size();
    std::vector<double> va(a.begin(), a.end()), vb(b.begin(), b.end());
    std::vector<double> aa(n), bb(n), ab(n);
    for (std::size_t i = 0; i < n; ++i) {
        aa[i] = va[i] * va[i];
        bb[i] = vb[i] * vb[i];
        ab[i] = va[i] * vb[i];
    }
    const std::vector<double> mu_a = filter_valid(va, width, height);
    const std::vector<double> mu_b = filter_valid(vb, width, height);
    const std::vector<double> e_aa = filter_valid(aa, width, height);
    const std::vector<double> e_bb = filter_valid(bb, width, height);
    const std::vector<double> e_ab = filter_valid(ab, width, height);
    double sum = 0.0;
    for (std::size_t i = 0; i < mu_a.size(); ++i) {
        const double ma = mu_a[i], mb = mu_b[i];
        const double var_a = e_aa[i] - ma * ma, var_b = e_bb[i] - mb * mb;
        const double cov = e_ab[i] - ma * mb;
        sum += ((2.0 * ma * mb + kC1) * (2.0 * cov + kC2)) /
               ((ma * ma + mb * mb + kC1) * (var_a + var_b + kC2));
    }
    return sum / static_cast<double>(mu_a.size());
}

double ssim_rgb8(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b, int width,
                 int height) {
    check_sizes(a.size(), b.size(),
                static_cast<std::size_t>(std::max(width, 0)) *
                    static_cast<std::size_t>(std::max(height, 0)) * 3,
                width, height, "ssim_rgb8");
    const std::size_t pixels = a.size() / 3;
    std::vector<double> ca(pixels), cb(pixels);
    double total = 0.0;
    for (std::size_t c = 0; c < 3; ++c) {
        for (std::size_t i = 0; i < pixels; ++i) {
            ca[i] = a[i * 3 + c];
            cb[i] = b[i * 3 + c];
        }
        total += ssim_gray(ca, cb, width, height);
    }
    return total / 3.0;
}

double detail_rgb8(std::span<const std::uint8_t> image, int width, int height) {
    if (width < 2 || height < 2 ||
        image.size() != static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3) {
        throw std::invalid_argument("detail_rgb8: " + std::to_string(image.size()) +
                                    " bytes for a " + std::to_string(width) + " x " +
                                    std::to_string(height) +
                                    " RGB image (at least 2 x 2, 3 bytes per pixel)");
    }
    const std::size_t w = static_cast<std::size_t>(width), h = static_cast<std::size_t>(height);
    const std::size_t row = w * 3;
    std::int64_t sum = 0;
    for (std::size_t y = 0; y < h; ++y) {
        const std::uint8_t* p = image.data() + y * row;
        for (std::size_t i = 0; i + 3 < row; ++i) sum += std::abs(int{p[i + 3]} - int{p[i]});
        if (y + 1 < h) {
            for (std::size_t i = 0; i < row; ++i) sum += std::abs(int{p[i + row]} - int{p[i]});
        }
    }
    const std::size_t pairs = (h * (w - 1) + (h - 1) * w) * 3;
    return static_cast<double>(sum) / static_cast<double>(pairs);
}

}  // namespace qvg::world
