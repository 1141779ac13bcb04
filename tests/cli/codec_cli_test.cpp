#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "qvg/core/safetensors.h"
#include "test_util.h"

namespace qvg {
namespace {

const std::string kFixture = test_data("qvg_pack/io.safetensors").string();

TEST(CodecCli, JsonOnTheFixtureIsNoWorseThanTheReference) {
    CommandResult r = run_qvg("codec --input " + kFixture + " --tensor kmeans/k_in --json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto j = nlohmann::json::parse(r.output);
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"bits", "bytes", "decode_ms", "encode_ms", "method",
                                              "ratio", "rel_error", "stage_rel_error"}));
    EXPECT_EQ(j["method"], "qvg");
    EXPECT_EQ(j["bits"], 2);
    // codes 65536 + scales 4096 + ids 2048 + centroids 131072 bytes
    EXPECT_EQ(j["bytes"], 65536 + 4096 + 2048 + 2 * 256 * 128 * 2);
    EXPECT_LE(j["rel_error"].get<double>(), 0.16124658277186993);  // config.json K_rel_l2
    EXPECT_EQ(j["stage_rel_error"].size(), 1u);
}

TEST(CodecCli, DumpWritesTheEncodedSpan) {
    TempDir dir;
    const auto out = dir.path() / "dump.safetensors";
    CommandResult r = run_qvg("codec --input " + kFixture +
                              " --tensor kmeans/k_in --stages 2 --dump " + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("QVG INT2 G64 S2"), std::string::npos) << r.output;
    auto file = core::SafetensorsFile::open(out);
    for (const char* name :
         {"recon", "codes", "scales", "ids_0", "centroids_0", "ids_1", "centroids_1"}) {
        EXPECT_TRUE(file->contains(name)) << name;
    }
    EXPECT_EQ(file->tensor("recon").sizes(), (at::IntArrayRef{1, 2, 1024, 128}));
    EXPECT_EQ(file->tensor("codes").sizes(), (at::IntArrayRef{1, 2, 1024, 32}));
}

TEST(CodecCli, EveryMethodRunsOnTheFixture) {
    for (const char* m : {"bf16", "fp8", "rtn", "kivi", "quarot", "qvg"}) {
        CommandResult r = run_qvg("codec --input " + kFixture +
                                  " --tensor pack/x --json --centroids 32 --method " + m);
        ASSERT_EQ(r.exit_code, 0) << m << ": " << r.output;
        const auto j = nlohmann::json::parse(r.output);
        EXPECT_EQ(j["method"], m);
        EXPECT_GT(j["ratio"].get<double>(), 0.99);
    }
}

TEST(CodecCli, BadInputGivesAClearMessage) {
    CommandResult r = run_qvg("codec --bogus");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("--bogus"), std::string::npos) << r.output;

    r = run_qvg("codec --input " + kFixture + " --tensor no/such");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("no tensor named 'no/such'"), std::string::npos) << r.output;

    r = run_qvg("codec --input " + kFixture + " --tensor pack/ids");  // [1, 2, 64]
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("[B, H, N, D]"), std::string::npos) << r.output;

    r = run_qvg("codec --input " + kFixture + " --tensor pack/x --centroids 200");  // 64 tokens
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("only 64 tokens"), std::string::npos) << r.output;

    TempDir dir;
    write_file(dir.path() / "bad.safetensors", "not a safetensors file at all");
    r = run_qvg("codec --input " + (dir.path() / "bad.safetensors").string());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("not a valid safetensors file"), std::string::npos) << r.output;

    r = run_qvg("codec --bits 3");
    EXPECT_NE(r.exit_code, 0);
}

TEST(CodecCli, BuiltInTableListsEveryMethod) {
    CommandResult r = run_qvg("codec --frames 2 --heads 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const char* label :
         {"BF16", "FP8", "RTN INT2 G16", "KIVI INT2 G32", "QuaRot INT2 G16", "QVG INT2 G64 S1",
          "QVG INT2 G16 S4", "window BF16", "sink+window BF16"}) {
        EXPECT_NE(r.output.find(label), std::string::npos) << label << "\n" << r.output;
    }
}

}  // namespace
}  // namespace qvg
