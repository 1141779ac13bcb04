#pragma once
// Full-reference image quality of RGB8 frames (the built-in world model against its ground-truth
// render): PSNR and SSIM, and the fine structure (detail) that tells blur from sharpness.
//
// PSNR is over all bytes of the image (R, G and B alike) with peak 255, capped at kMaxPsnrDb so
// that identical images have a finite score that is the largest possible (means stay defined).
//
// SSIM follows Wang, Bovik, Sheikh and Simoncelli (IEEE TIP 2004) and their reference code:
// local statistics under an 11x11 Gaussian window of sigma 1.5 (normalised to sum 1), constants
// C1 = (0.01 * 255)^2 and C2 = (0.03 * 255)^2, the SSIM map over every position where the window
// fits inside the image ("valid": (H - 10) x (W - 10) values), and its mean. For RGB it is
// computed per channel and the three means are averaged (as scikit-image does with
// channel_axis, and pytorch-msssim); no luma conversion.

#include <cstdint>
#include <span>

namespace qvg::world {

inline constexpr double kMaxPsnrDb = 100.0;
inline constexpr int kSsimWindow = 11;
inline constexpr double kSsimSigma = 1.5;

// Mean squared difference of two equally long byte arrays. Throws std::invalid_argument for
// different or zero lengths.
double mean_squared_error(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

// 10 log10(255^2 / mse), at most kMaxPsnrDb (exactly kMaxPsnrDb for mse == 0).
double psnr_from_mse(double mse);

// PSNR of two equally long byte arrays (any layout). Throws like mean_squared_error.
double psnr(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

// SSIM of two single-channel images (row-major, width * height values in 0..255). Throws
// std::invalid_argument for a size mismatch or an image smaller than the window.
double ssim_gray(std::span<const double> a, std::span<const double> b, int width, int height);

// Mean over R, G and B of the per-channel SSIM of two RGB8 images [height, width, 3].
double ssim_rgb8(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b, int width,
                 int height);

// Fine structure of an RGB8 image [height, width, 3]: the mean absolute difference between
// horizontally and vertically neighbouring values of the same channel (a total-variation
// gradient energy), over all (height * (width - 1) + (height - 1) * width) * 3 pairs. A flat
// image has 0. Blur lowers it; a noise-free generated frame with the detail of its ground truth
// has a ratio of about 1 to it, a blurred one less. PSNR rewards the blur of a prediction that
// does not know what to draw, so qvg eval reports this ratio beside it. Throws
// std::invalid_argument when the size is not width * height * 3 or the image is smaller than
// 2 x 2.
double detail_rgb8(std::span<const std::uint8_t> image, int width, int height);

}  // namespace qvg::world
