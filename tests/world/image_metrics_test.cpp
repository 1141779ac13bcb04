// PSNR and SSIM of RGB8 frames: values worked out by hand, the identities they must satisfy, and
// the separable SSIM against a direct evaluation of the definition.

#include <qvg/world/image_metrics.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace qvg::world {
namespace {

constexpr double kC1 = 6.5025;   // (0.01 * 255)^2
constexpr double kC2 = 58.5225;  // (0.03 * 255)^2

std::vector<double> constant(int w, int h, double value) {
    return std::vector<double>(static_cast<std::size_t>(w * h), value);
}

std::vector<std::uint8_t> random_rgb(int w, int h, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(0, 255);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(w * h * 3));
    for (auto& v : out) v = static_cast<std::uint8_t>(d(rng));
    return out;
}

// SSIM straight from the definition: for every valid window position, weighted sums over the
// full 11x11 Gaussian window (no separable filtering).
double ssim_direct(const std::vector<double>& a, const std::vector<double>& b, int w, int h) {
    double g[11][11], total = 0;
    for (int y = 0; y < 11; ++y) {
        for (int x = 0; x < 11; ++x) {
            g[y][x] = std::exp(-((x - 5) * (x - 5) + (y - 5) * (y - 5)) / (2 * 1.5 * 1.5));
            total += g[y][x];
        }
    }
    double sum = 0;
    int count = 0;
    for (int y0 = 0; y0 + 11 <= h; ++y0) {
        for (int x0 = 0; x0 + 11 <= w; ++x0) {
            double ma = 0, mb = 0, saa = 0, sbb = 0, sab = 0;
            for (int y = 0; y < 11; ++y) {
                for (int x = 0; x < 11; ++x) {
                    const double wt = g[y][x] / total;
                    const double va = a[static_cast<std::size_t>((y0 + y) * w + x0 + x)];
                    const double vb = b[static_cast<std::size_t>((y0 + y) * w + x0 + x)];
                    ma += wt * va;
                    mb += wt * vb;
                    saa += wt * va * va;
                    sbb += wt * vb * vb;
                    sab += wt * va * vb;
                }
            }
            const double var_a = saa - ma * ma, var_b = sbb - mb * mb, cov = sab - ma * mb;
            sum += (2 * ma * mb + kC1) * (2 * cov + kC2) /
                   ((ma * ma + mb * mb + kC1) * (var_a + var_b + kC2));
            ++count;
        }
    }
    return sum / count;
}

TEST(ImageMetrics, PsnrKnownValues) {
    const std::vector<std::uint8_t> black(48, 0), white(48, 255), one(48, 1);
    EXPECT_DOUBLE_EQ(psnr(black, white), 0.0);        // MSE 255^2
    EXPECT_NEAR(psnr(black, one), 48.1308036, 1e-6);  // MSE 1: 20 log10(255)
    std::vector<std::uint8_t> half = black;
    for (std::size_t i = 0; i < half.size(); i += 2) half[i] = 2;  // MSE 2
    EXPECT_NEAR(psnr(black, half), 45.1205037, 1e-6);
    EXPECT_DOUBLE_EQ(mean_squared_error(black, half), 2.0);
    // Identical images get the cap. Two 64x64 RGB frames that differ by one step in one byte
    // stay well below it (MSE 1 / 12288: 89.0 dB); only MSE under 6.5e-6 is clamped to it.
    EXPECT_DOUBLE_EQ(psnr(white, white), kMaxPsnrDb);
    EXPECT_DOUBLE_EQ(psnr_from_mse(0.0), kMaxPsnrDb);
    EXPECT_DOUBLE_EQ(psnr_from_mse(1e-12), kMaxPsnrDb);
    EXPECT_NEAR(psnr_from_mse(1.0 / 12288), 89.0256, 1e-4);
    EXPECT_LT(psnr_from_mse(1e-5), kMaxPsnrDb);
    EXPECT_THROW(psnr(black, std::vector<std::uint8_t>(47, 0)), std::invalid_argument);
    EXPECT_THROW(psnr(std::vector<std::uint8_t>{}, std::vector<std::uint8_t>{}),
                 std::invalid_argument);
}

TEST(ImageMetrics, SsimOfIdenticalImagesIsOne) {
    const auto img = random_rgb(20, 17, 1);
    EXPECT_DOUBLE_EQ(ssim_rgb8(img, img, 20, 17), 1.0);
    const auto flat = constant(11, 11, 42.0);
    EXPECT_DOUBLE_EQ(ssim_gray(flat, flat, 11, 11), 1.0);
}

TEST(ImageMetrics, SsimOfFlatImagesIsTheLuminanceTerm) {
    // No variance anywhere: the contrast-structure term is C2 / C2 and every window has the
    // means 100 and 110, so SSIM = (2 * 100 * 110 + C1) / (100^2 + 110^2 + C1) = 0.99547644.
    const double got = ssim_gray(constant(16, 13, 100), constant(16, 13, 110), 16, 13);
    EXPECT_NEAR(got, 0.9954764441, 1e-9);
    EXPECT_NEAR(got, (2 * 100.0 * 110 + kC1) / (100.0 * 100 + 110.0 * 110 + kC1), 1e-12);
}

TEST(ImageMetrics, SsimOfOneWindowWorkedByHand) {
    // An 11x11 image has one window position. a is 100 with a single 200 in the centre, b is 100.
    // The centre weight is w = 1 / (sum_{i=-5..5} exp(-i^2 / 4.5))^2 = 1 / 3.7592328^2 = 0.0707622,
    // so mu_a = 100 + 100 w, var_a = w (1 - w) 100^2 = 657.55, mu_b = 100, var_b = cov = 0, and
    // SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) * C2 / (var_a + C2) = 0.0815365.
    std::vector<double> a = constant(11, 11, 100);
    a[60] = 200;
    const double got = ssim_gray(a, constant(11, 11, 100), 11, 11);
    EXPECT_NEAR(got, 0.0815365341, 1e-9);
    // And the same number from the formula, with the weight computed here.
    double s = 0;
    for (int i = -5; i <= 5; ++i) s += std::exp(-i * i / 4.5);
    const double w = 1 / (s * s), mu_a = 100 + 100 * w, var_a = w * (1 - w) * 100 * 100;
    EXPECT_NEAR(got, (2 * mu_a * 100 + kC1) / (mu_a * mu_a + 100 * 100 + kC1) * kC2 / (var_a + kC2),
                1e-12);
}

TEST(ImageMetrics, SsimMatchesTheDefinitionWindowByWindow) {
    const int w = 23, h = 14;  // awkward sizes: 13 x 4 window positions
    const auto a8 = random_rgb(w, h, 2), b8 = random_rgb(w, h, 3);
    std::vector<double> a(static_cast<std::size_t>(w * h)), b(a.size());
    for (int c = 0; c < 3; ++c) {
        for (std::size_t i = 0; i < a.size(); ++i) {
            a[i] = a8[i * 3 + static_cast<std::size_t>(c)];
            // A correlated second image: half of a plus half noise.
            b[i] = 0.5 * a[i] + 0.5 * b8[i * 3 + static_cast<std::size_t>(c)];
        }
        const double expected = ssim_direct(a, b, w, h);
        EXPECT_NEAR(ssim_gray(a, b, w, h), expected, 1e-12) << "channel " << c;
        EXPECT_NEAR(ssim_gray(b, a, w, h), expected, 1e-12) << "symmetric";
        EXPECT_GT(expected, 0.2);
        EXPECT_LT(expected, 0.95);
    }
}

TEST(ImageMetrics, RgbSsimIsTheMeanOfTheChannelsAndFallsWithNoise) {
    const int w = 16, h = 16;
    const auto a = random_rgb(w, h, 4);
    std::mt19937 rng(5);
    std::normal_distribution<double> noise(0.0, 1.0);
    double last = 1.0;
    for (double sigma : {2.0, 8.0, 32.0}) {
        std::vector<std::uint8_t> b = a;
        for (auto& v : b) {
            v = static_cast<std::uint8_t>(std::clamp(v + sigma * noise(rng), 0.0, 255.0));
        }
        const double s = ssim_rgb8(a, b, w, h);
        EXPECT_LT(s, last) << "sigma " << sigma;
        last = s;
        double mean = 0;
        for (int c = 0; c < 3; ++c) {
            std::vector<double> ca, cb;
            for (std::size_t i = static_cast<std::size_t>(c); i < a.size(); i += 3) {
                ca.push_back(a[i]);
                cb.push_back(b[i]);
            }
            mean += ssim_gray(ca, cb, w, h) / 3;
        }
        EXPECT_NEAR(s, mean, 1e-12);
    }
}

TEST(ImageMetrics, SsimRejectsBadSizes) {
    EXPECT_THROW(ssim_gray(constant(10, 11, 0), constant(10, 11, 0), 10, 11),
                 std::invalid_argument);  // narrower than the window
    EXPECT_THROW(ssim_gray(constant(11, 11, 0), constant(11, 12, 0), 11, 11),
                 std::invalid_argument);
    EXPECT_THROW(ssim_rgb8(std::vector<std::uint8_t>(11 * 11 * 3),
                           std::vector<std::uint8_t>(11 * 11), 11, 11),
                 std::invalid_argument);
}

TEST(ImageMetrics, DetailWorkedByHand) {
    // 2 x 2, one channel varying: R = [[0, 10], [30, 70]], G and B flat.
    // Horizontal pairs: |10 - 0| + |70 - 30| = 50; vertical: |30 - 0| + |70 - 10| = 90.
    // (2 * 1 + 1 * 2) * 3 = 12 pairs.
    std::vector<std::uint8_t> img(2 * 2 * 3, 7);
    img[0] = 0;
    img[3] = 10;
    img[6] = 30;
    img[9] = 70;
    EXPECT_DOUBLE_EQ(detail_rgb8(img, 2, 2), 140.0 / 12.0);
    EXPECT_EQ(detail_rgb8(std::vector<std::uint8_t>(8 * 5 * 3, 200), 8, 5), 0.0);
    // A one-pixel checkerboard in all channels: every pair differs by 255.
    std::vector<std::uint8_t> board(6 * 4 * 3);
    for (int y = 0; y < 4; ++y) {
        for (int x = 0; x < 6; ++x) {
            for (int c = 0; c < 3; ++c)
                board[static_cast<std::size_t>((y * 6 + x) * 3 + c)] = ((x + y) % 2) ? 255 : 0;
        }
    }
    EXPECT_DOUBLE_EQ(detail_rgb8(board, 6, 4), 255.0);
}

TEST(ImageMetrics, DetailFallsWithBlurWhilePsnrCanRise) {
    // A random image, its 3x3 box blur, and a sharp prediction of the wrong content (another
    // random image): the blur has less detail but the higher PSNR, which is the confusion the
    // detail ratio exposes in qvg eval.
    const int w = 32, h = 24;
    const auto truth = random_rgb(w, h, 11);
    const auto wrong = random_rgb(w, h, 12);
    std::vector<std::uint8_t> blur(truth.size());
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            for (int c = 0; c < 3; ++c) {
                int sum = 0, n = 0;
                for (int dy = -1; dy <= 1; ++dy) {
                    for (int dx = -1; dx <= 1; ++dx) {
                        const int yy = y + dy, xx = x + dx;
                        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                        sum += wrong[static_cast<std::size_t>((yy * w + xx) * 3 + c)];
                        ++n;
                    }
                }
                blur[static_cast<std::size_t>((y * w + x) * 3 + c)] =
                    static_cast<std::uint8_t>((sum + n / 2) / n);
            }
        }
    }
    EXPECT_LT(detail_rgb8(blur, w, h), 0.5 * detail_rgb8(wrong, w, h));
    EXPECT_NEAR(detail_rgb8(wrong, w, h) / detail_rgb8(truth, w, h), 1.0, 0.05);
    EXPECT_GT(psnr(blur, truth), psnr(wrong, truth) + 2.0);
}

TEST(ImageMetrics, DetailRejectsBadSizes) {
    EXPECT_THROW(detail_rgb8(std::vector<std::uint8_t>(4 * 4 * 3 - 1), 4, 4),
                 std::invalid_argument);
    EXPECT_THROW(detail_rgb8(std::vector<std::uint8_t>(1 * 4 * 3), 1, 4), std::invalid_argument);
}

}  // namespace
}  // namespace qvg::world
