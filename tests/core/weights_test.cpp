#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/weights.h"
#include "test_util.h"

namespace qvg::core {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return test_data("checkpoints/" + name); }

// Names of make_checkpoints.py's TinyModel state dict.
const std::vector<std::string> kTinyNames = {
    "blocks.0.norm.bias",   "blocks.0.norm.weight",  "blocks.0.q.bias",
    "blocks.0.q.weight",    "blocks.1.norm.bias",    "blocks.1.norm.weight",
    "blocks.1.q.bias",      "blocks.1.q.weight",     "freqs",
    "patch_embedding.bias", "patch_embedding.weight"};

std::vector<std::string> names_of(const TensorMap& map) {
    std::vector<std::string> names;
    for (const auto& [name, t] : map) names.push_back(name);
    return names;
}

// The values saved under `stem/<entry>.<original name>`, keyed by the stripped name.
TensorMap saved_entry(const std::string& stem, const std::string& entry) {
    auto expected = SafetensorsFile::open(fixture("expected.safetensors"));
    const std::string prefix = stem + "/" + (entry.empty() ? "" : entry + ".");
    TensorMap out;
    for (const auto& info : expected->tensors()) {
        if (info.name.rfind(prefix, 0) != 0) continue;
        out.emplace(strip_wrapper_prefixes(info.name.substr(prefix.size())),
                    expected->tensor(info.name));
    }
    return out;
}

void expect_same(const TensorMap& got, const TensorMap& want) {
    ASSERT_EQ(names_of(got), names_of(want));
    for (const auto& [name, t] : want) {
        EXPECT_EQ(got.at(name).scalar_type(), t.scalar_type()) << name;
        EXPECT_TRUE(at::equal(got.at(name), t)) << name;
    }
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const FormatError& e) {
        return e.what();
    }
    return "(no FormatError)";
}

#define EXPECT_FORMAT_ERROR(statement, fragment)                                          \
    do {                                                                                  \
        const std::string message_ = error_of([&] { statement; });                        \
        EXPECT_NE(message_.find(fragment), std::string::npos) << "message: " << message_; \
    } while (0)

TEST(Weights, StripsWrapperPrefixes) {
    EXPECT_EQ(strip_wrapper_prefixes("model.blocks.0.q.weight"), "blocks.0.q.weight");
    EXPECT_EQ(strip_wrapper_prefixes("_fsdp_wrapped_module.model.module._orig_mod.head.head.bias"),
              "head.head.bias");
    EXPECT_EQ(
        strip_wrapper_prefixes("model.blocks.3._fsdp_wrapped_module._checkpoint_wrapped_module"
                               ".ffn.0.weight"),
        "blocks.3.ffn.0.weight");
    // Only whole leading components are prefixes: "modelx." and inner "model." stay.
    EXPECT_EQ(strip_wrapper_prefixes("modelx.w"), "modelx.w");
    EXPECT_EQ(strip_wrapper_prefixes("blocks.model.w"), "blocks.model.w");
    EXPECT_EQ(strip_wrapper_prefixes("blocks.x_orig_mod.w"), "blocks.x_orig_mod.w");
    EXPECT_EQ(strip_wrapper_prefixes("patch_embedding.weight"), "patch_embedding.weight");
}

TEST(Weights, PrefersGeneratorEmaAndStripsPrefixes) {
    const TensorMap got = load_weights(fixture("nested.pt"));
    EXPECT_EQ(names_of(got), kTinyNames);
    expect_same(got, saved_entry("nested", "generator_ema"));
}

TEST(Weights, ForcedEntryAndWrappersInsideNames) {
    WeightLoadOptions options;
    options.checkpoint_key = "generator";
    const TensorMap got = load_weights(fixture("nested.pt"), options);
    EXPECT_EQ(names_of(got), kTinyNames);
    expect_same(got, saved_entry("nested", "generator"));
    // The two entries hold different values (different seeds), so the choice is visible.
    EXPECT_FALSE(at::equal(got.at("blocks.0.q.weight"),
                           load_weights(fixture("nested.pt")).at("blocks.0.q.weight")));
}

TEST(Weights, FallsBackToGeneratorThenToAFlatStateDict) {
    expect_same(load_weights(fixture("generator_only.pt")),
                saved_entry("generator_only", "generator"));
    expect_same(load_weights(fixture("plain.pt")), saved_entry("plain", ""));
}

TEST(Weights, KeepsNamesWhenAsked) {
    WeightLoadOptions options;
    options.strip_prefixes = false;
    const TensorMap got = load_weights(fixture("nested.pt"), options);
    EXPECT_EQ(got.count("model.blocks.0.q.weight"), 1u);
    EXPECT_EQ(got.count("blocks.0.q.weight"), 0u);
}

TEST(Weights, ExplainsWhichCheckpointEntryIsMissing) {
    WeightLoadOptions options;
    options.checkpoint_key = "nope";
    EXPECT_FORMAT_ERROR(load_weights(fixture("nested.pt"), options), "no top-level entry 'nope'");
    options.checkpoint_key = "step";
    EXPECT_FORMAT_ERROR(load_weights(fixture("nested.pt"), options), "'step' is a int");
    EXPECT_FORMAT_ERROR(load_weights(fixture("no_generator.pt")),
                        "found neither 'generator_ema' nor 'generator'");
    EXPECT_FORMAT_ERROR(load_weights(fixture("no_generator.pt")), "critic");
    options.checkpoint_key = "critic";
    EXPECT_EQ(names_of(load_weights(fixture("no_generator.pt"), options)), kTinyNames);
}

TEST(Weights, HostileCheckpointsFailThroughTheLoaderToo) {
    EXPECT_FORMAT_ERROR(load_weights(fixture("hostile_os_system.pt")), "'os.system'");
    EXPECT_FORMAT_ERROR(load_weights(fixture("compressed.pt")), "compressed");
    EXPECT_FORMAT_ERROR(load_weights(fixture("legacy.pt")), "legacy torch.save format");
    EXPECT_THROW(load_weights(fixture("missing.pt")), Error);
}

TEST(Weights, LoadsSafetensorsFilesAndStripsThem) {
    TempDir dir;
    const auto path = dir.path() / "w.safetensors";
    save_safetensors(path, {{"model.a", at::arange(4)}, {"b", at::ones({2, 2}).to(at::kBFloat16)}});
    const TensorMap got = load_weights(path);
    EXPECT_EQ(names_of(got), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(at::equal(got.at("a"), at::arange(4)));
    EXPECT_EQ(got.at("b").scalar_type(), at::kBFloat16);

    save_safetensors(path, {{"model.a", at::ones({1})}, {"a", at::ones({1})}});
    EXPECT_FORMAT_ERROR(load_weights(path), "both become 'a'");

    write_file(path, "garbage that is neither zip nor safetensors");
    EXPECT_THROW(load_weights(path), FormatError);
}

TEST(Weights, DirectoriesResolveToTheirWeightFile) {
    TempDir dir;
    // Wan's layout: the DiT in safetensors next to other models' .pth files.
    save_safetensors(dir.path() / "diffusion_pytorch_model.safetensors", {{"x", at::ones({3})}});
    fs::copy_file(fixture("plain.pt"), dir.path() / "Wan2.1_VAE.pth");
    fs::copy_file(fixture("dtypes.pt"), dir.path() / "models_t5.pth");
    EXPECT_EQ(names_of(load_weights(dir.path())), (std::vector<std::string>{"x"}));

    TempDir hf;
    save_safetensors(hf.path() / "model.safetensors", {{"y", at::ones({3})}});
    EXPECT_EQ(names_of(load_weights(hf.path())), (std::vector<std::string>{"y"}));

    TempDir single;
    fs::copy_file(fixture("nested.pt"), single.path() / "self_forcing_dmd.pt");
    write_file(single.path() / "README.md", "notes");
    expect_same(load_weights(single.path()), saved_entry("nested", "generator_ema"));

    TempDir two;
    fs::copy_file(fixture("plain.pt"), two.path() / "a.pt");
    fs::copy_file(fixture("plain.pt"), two.path() / "b.pth");
    EXPECT_FORMAT_ERROR(load_weights(two.path()), "several candidate weight files (a.pt, b.pth)");

    TempDir empty;
    write_file(empty.path() / "notes.txt", "x");
    EXPECT_FORMAT_ERROR(load_weights(empty.path()), "no weights found");
    EXPECT_FORMAT_ERROR(load_weights(empty.path()), "notes.txt");
}

TEST(Weights, LoadsShardedSafetensorsThroughTheirIndex) {
    TempDir dir;
    save_safetensors(dir.path() / "diffusion_pytorch_model-00001-of-00002.safetensors",
                     {{"blocks.0.w", at::full({2}, 1.0f)}, {"head.w", at::full({3}, 2.0f)}});
    save_safetensors(dir.path() / "diffusion_pytorch_model-00002-of-00002.safetensors",
                     {{"blocks.1.w", at::full({2}, 3.0f)}});
    const auto index = dir.path() / "diffusion_pytorch_model.safetensors.index.json";
    write_file(index, R"({"metadata": {"total_size": 28}, "weight_map": {
        "blocks.0.w": "diffusion_pytorch_model-00001-of-00002.safetensors",
        "head.w": "diffusion_pytorch_model-00001-of-00002.safetensors",
        "blocks.1.w": "diffusion_pytorch_model-00002-of-00002.safetensors"}})");
    const TensorMap got = load_weights(dir.path());
    EXPECT_EQ(names_of(got), (std::vector<std::string>{"blocks.0.w", "blocks.1.w", "head.w"}));
    EXPECT_TRUE(at::equal(got.at("blocks.1.w"), at::full({2}, 3.0f)));
    EXPECT_EQ(names_of(load_weights(index)), names_of(got));

    write_file(
        index,
        R"({"weight_map": {"blocks.9.w": "diffusion_pytorch_model-00002-of-00002.safetensors"}})");
    EXPECT_FORMAT_ERROR(load_weights(dir.path()), "places 'blocks.9.w' in this shard");
    write_file(index, R"({"weight_map": {"a": "../elsewhere.safetensors"}})");
    EXPECT_FORMAT_ERROR(load_weights(dir.path()), "is not a file name");
    write_file(index, "{not json");
    EXPECT_FORMAT_ERROR(load_weights(dir.path()), "not a valid index");
}

TEST(Weights, CheckWeightsAcceptsAnExactMatch) {
    const TensorMap got = {{"a", at::zeros({2, 3})}, {"b", at::zeros({4})}};
    EXPECT_NO_THROW(check_weights(got, {{"a", {2, 3}}, {"b", {4}}}, "tiny"));
}

TEST(Weights, CheckWeightsListsEveryProblemOnce) {
    const TensorMap got = {
        {"a", at::zeros({2, 3})}, {"extra", at::zeros({7})}, {"b", at::zeros({5})}};
    const std::string message = error_of([&] {
        check_weights(got, {{"a", {2, 3}}, {"b", {4}}, {"c", {1, 2}}}, "tiny DiT");
    });
    EXPECT_NE(message.find("tiny DiT"), std::string::npos) << message;
    EXPECT_NE(message.find("1 missing, 1 unexpected, 1 with the wrong shape"), std::string::npos)
        << message;
    EXPECT_NE(message.find("missing c [1, 2]"), std::string::npos) << message;
    EXPECT_NE(message.find("unexpected extra [7]"), std::string::npos) << message;
    EXPECT_NE(message.find("b: expected [4], found [5]"), std::string::npos) << message;
    EXPECT_EQ(message.find(" a ["), std::string::npos) << message;
}

TEST(Weights, CheckWeightsTruncatesLongLists) {
    std::vector<ExpectedTensor> expected;
    for (int i = 0; i < 25; ++i) expected.push_back({"blocks." + std::to_string(i) + ".w", {8}});
    const std::string message = error_of([&] { check_weights({}, expected, "model"); });
    EXPECT_NE(message.find("25 missing"), std::string::npos) << message;
    EXPECT_NE(message.find("and 15 more missing"), std::string::npos) << message;
    size_t lines = 0;
    for (char c : message) lines += c == '\n';
    EXPECT_EQ(lines, 11u) << message;
}

}  // namespace
}  // namespace qvg::core
