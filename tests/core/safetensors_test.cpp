#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"
#include "test_util.h"

namespace qvg::core {
namespace {

TEST(Safetensors, RoundTripsEveryDtype) {
    TempDir dir;
    const auto path = dir.path() / "t.safetensors";
    std::vector<std::pair<std::string, at::Tensor>> in = {
        {"f32", at::randn({3, 4})},
        {"bf16", at::randn({5}).to(at::kBFloat16)},
        {"u8", at::randint(0, 255, {2, 2, 2}).to(at::kByte)},
        {"i64", at::arange(7)},
        {"empty", at::empty({0, 3})},
    };
    save_safetensors(path, in, {{"format", "pt"}});
    auto file = SafetensorsFile::open(path);
    EXPECT_EQ(file->metadata().at("format"), "pt");
    ASSERT_EQ(file->tensors().size(), in.size());
    for (const auto& [name, t] : in) {
        at::Tensor got = file->tensor(name);
        EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
        EXPECT_TRUE(at::equal(got, t)) << name;
    }
}

TEST(Safetensors, TensorOutlivesFileHandleAndWritesStayPrivate) {
    TempDir dir;
    const auto path = dir.path() / "t.safetensors";
    save_safetensors(path, {{"x", at::ones({4})}});
    at::Tensor x;
    {
        auto file = SafetensorsFile::open(path);
        x = file->tensor("x");
    }
    x.mul_(3);  // copy-on-write mapping: must not reach the file
    EXPECT_TRUE(at::equal(x, at::full({4}, 3.0f)));
    EXPECT_TRUE(at::equal(SafetensorsFile::open(path)->tensor("x"), at::ones({4})));
}

TEST(Safetensors, RejectsMissingTruncatedAndCorruptFiles) {
    TempDir dir;
    EXPECT_THROW(SafetensorsFile::open(dir.path() / "missing.safetensors"), Error);

    const auto good = dir.path() / "good.safetensors";
    save_safetensors(good, {{"x", at::ones({64})}});
    const auto bytes = read_file(good);

    const auto truncated = dir.path() / "truncated.safetensors";
    write_file(truncated, bytes.substr(0, bytes.size() - 10));
    try {
        SafetensorsFile::open(truncated);
        FAIL() << "truncated file accepted";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }

    const auto tiny = dir.path() / "tiny.safetensors";
    write_file(tiny, "abc");
    EXPECT_THROW(SafetensorsFile::open(tiny), FormatError);

    std::string bad_json = bytes;
    bad_json[9] = '!';
    const auto corrupt = dir.path() / "corrupt.safetensors";
    write_file(corrupt, bad_json);
    EXPECT_THROW(SafetensorsFile::open(corrupt), FormatError);

    std::string huge = bytes;
    huge[6] = 0x7f;  // header size far beyond the file
    const auto oversize = dir.path() / "oversize.safetensors";
    write_file(oversize, huge);
    EXPECT_THROW(SafetensorsFile::open(oversize), FormatError);
}

TEST(Safetensors, IntegerMetadataWithFallbackAndAClearError) {
    TempDir dir;
    const auto path = dir.path() / "m.safetensors";
    save_safetensors(path, {{"x", at::ones({1})}}, {{"n", "12"}, {"bad", "12x"}});
    const auto file = SafetensorsFile::open(path);
    EXPECT_EQ(file->metadata_int("n", 0), 12);
    EXPECT_EQ(file->metadata_int("absent", 7), 7);
    try {
        file->metadata_int("bad", 0);
        ADD_FAILURE() << "no error for a non-integer value";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("metadata bad = '12x' is not an integer"),
                  std::string::npos)
            << e.what();
    }
}

TEST(Safetensors, UnknownTensorNameIsAClearError) {
    TempDir dir;
    const auto path = dir.path() / "t.safetensors";
    save_safetensors(path, {{"x", at::ones({1})}});
    auto file = SafetensorsFile::open(path);
    try {
        file->tensor("y");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos);
    }
}

TEST(Safetensors, ReadsTheReferenceFixture) {
    auto file = SafetensorsFile::open(test_data("qvg_pack/io.safetensors"));
    at::Tensor x = file->tensor("pack/x");
    EXPECT_EQ(x.scalar_type(), at::kBFloat16);
    EXPECT_EQ(x.sizes().vec(), (std::vector<int64_t>{1, 2, 64, 128}));
}

}  // namespace
}  // namespace qvg::core

namespace qvg::core {
namespace {

TEST(Safetensors, EmptyTensorsBetweenOthersAreNotOverlaps) {
    TempDir dir;
    const auto path = dir.path() / "t.safetensors";
    // Writers put zero-size tensors anywhere: their offsets equal a neighbour's start.
    save_safetensors(path, {{"a", at::ones({3})}, {"empty", at::empty({0})}, {"b", at::ones({2})}});
    auto file = SafetensorsFile::open(path);
    EXPECT_EQ(file->tensor("empty").numel(), 0);
    EXPECT_TRUE(at::equal(file->tensor("b"), at::ones({2})));
}

}  // namespace
}  // namespace qvg::core
