// Fixtures come from tests/data/checkpoints/make_checkpoints.py; expected.safetensors holds the
// values that script saved, keyed "<file stem>/<flattened name>".

#include <filesystem>
#include <set>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "qvg/core/error.h"
#include "qvg/core/safetensors.h"
#include "qvg/core/torch_checkpoint.h"
#include "test_util.h"

namespace qvg::core {
namespace {

std::filesystem::path fixture(const std::string& name) { return test_data("checkpoints/" + name); }

// Every tensor the script recorded for `stem` must be in `got` with the same dtype, shape and
// values, and `got` must hold nothing else.
void expect_saved_values(const std::string& stem, const std::map<std::string, at::Tensor>& got) {
    auto expected = SafetensorsFile::open(fixture("expected.safetensors"));
    std::set<std::string> want;
    for (const auto& info : expected->tensors()) {
        if (info.name.rfind(stem + "/", 0) != 0) continue;
        const std::string name = info.name.substr(stem.size() + 1);
        want.insert(name);
        auto it = got.find(name);
        ASSERT_NE(it, got.end()) << stem << ": missing " << name;
        const at::Tensor e = expected->tensor(info.name);
        EXPECT_EQ(it->second.scalar_type(), e.scalar_type()) << name;
        EXPECT_EQ(it->second.sizes(), e.sizes()) << name;
        EXPECT_TRUE(at::equal(it->second, e)) << name;
    }
    EXPECT_FALSE(want.empty()) << "no expected values for " << stem;
    for (const auto& [name, t] : got) EXPECT_EQ(want.count(name), 1u) << "unexpected " << name;
}

std::string load_error(const std::filesystem::path& path) {
    try {
        load_torch_checkpoint(path);
    } catch (const FormatError& e) {
        return e.what();
    }
    return "(no FormatError)";
}

void expect_load_error(const std::filesystem::path& path, const std::string& fragment) {
    const std::string message = load_error(path);
    EXPECT_NE(message.find(fragment), std::string::npos)
        << path.filename() << ": expected '" << fragment << "' in: " << message;
}

TEST(TorchCheckpoint, ReadsAPlainStateDict) {
    const CheckpointValue root = load_torch_checkpoint(fixture("plain.pt"));
    ASSERT_TRUE(root.is_dict());
    // Insertion order survives: the root's own buffer first, then children in registration order.
    ASSERT_EQ(root.size(), 11u);
    EXPECT_EQ(root.keys()[0], "freqs");
    EXPECT_EQ(root.keys()[1], "patch_embedding.weight");
    EXPECT_EQ(root.keys().back(), "blocks.1.norm.bias");
    expect_saved_values("plain", flatten_tensors(root));
}

TEST(TorchCheckpoint, ReadsNestedDictsAndPlainValues) {
    const CheckpointValue root = load_torch_checkpoint(fixture("nested.pt"));
    EXPECT_EQ(root.keys(),
              (std::vector<std::string>{"generator_ema", "generator", "critic", "step", "big",
                                        "negative", "lr", "name", "flags", "shape", "dtype"}));
    EXPECT_EQ(root.at("step").as_int(), 1234);
    EXPECT_EQ(root.at("big").as_int(), (int64_t{1} << 40) + 7);
    EXPECT_EQ(root.at("negative").as_int(), -300);
    EXPECT_DOUBLE_EQ(root.at("lr").as_float(), 2.5e-4);
    EXPECT_EQ(root.at("name").as_string(), "self-forcing");
    const auto& flags = root.at("flags");
    ASSERT_EQ(flags.kind(), CheckpointValue::Kind::kList);
    ASSERT_EQ(flags.size(), 3u);
    EXPECT_TRUE(flags.items()[0].as_bool());
    EXPECT_FALSE(flags.items()[1].as_bool());
    EXPECT_EQ(flags.items()[2].kind(), CheckpointValue::Kind::kNone);
    EXPECT_EQ(root.at("shape").kind(), CheckpointValue::Kind::kTuple);
    EXPECT_EQ(root.at("shape").items()[2].as_int(), 3);
    EXPECT_EQ(root.at("dtype").as_dtype(), at::kBFloat16);
    EXPECT_TRUE(root.at("generator_ema").is_dict());
    EXPECT_EQ(root.find("absent"), nullptr);
    expect_saved_values("nested", flatten_tensors(root));
}

TEST(TorchCheckpoint, AccessorsNameTheKindTheyFound) {
    const CheckpointValue root = load_torch_checkpoint(fixture("nested.pt"));
    try {
        root.at("name").as_int();
        FAIL() << "a str read as int";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("expected int, found str"), std::string::npos)
            << e.what();
    }
    try {
        root.at("no_such_entry");
        FAIL() << "missing key accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("generator_ema"), std::string::npos) << e.what();
    }
}

TEST(TorchCheckpoint, ReadsEveryDtype) {
    const auto tensors = flatten_tensors(load_torch_checkpoint(fixture("dtypes.pt")));
    expect_saved_values("dtypes", tensors);
    EXPECT_EQ(tensors.at("bf16").scalar_type(), at::kBFloat16);
    EXPECT_EQ(tensors.at("f16").scalar_type(), at::kHalf);
    EXPECT_EQ(tensors.at("i64").scalar_type(), at::kLong);
    EXPECT_EQ(tensors.at("bool").scalar_type(), at::kBool);
    EXPECT_EQ(tensors.at("scalar").dim(), 0);
    EXPECT_FALSE(tensors.at("param").requires_grad());
    EXPECT_EQ(tensors.at("i64")[0].item<int64_t>(), -(int64_t{1} << 40));
}

TEST(TorchCheckpoint, ViewsKeepOffsetStrideAndSharedStorage) {
    const auto t = flatten_tensors(load_torch_checkpoint(fixture("views.pt")));
    expect_saved_values("views", t);
    const at::Tensor& base = t.at("base");
    EXPECT_EQ(t.at("slice").storage_offset(), 12);
    EXPECT_EQ(t.at("slice").strides(), (at::IntArrayRef{10, 1}));
    EXPECT_EQ(t.at("transposed").strides(), (at::IntArrayRef{1, 10}));
    EXPECT_EQ(t.at("stepped").strides(), (at::IntArrayRef{20, 3}));
    EXPECT_EQ(t.at("half_slice").storage_offset(), 3);
    // One storage, as in PyTorch: writing through one view is seen by the others.
    EXPECT_TRUE(t.at("alias").is_alias_of(base));
    EXPECT_TRUE(t.at("slice").is_alias_of(base));
    base.fill_(-1.0f);
    EXPECT_TRUE(at::equal(t.at("alias"), at::full({3, 20}, -1.0f)));
    EXPECT_TRUE(at::equal(t.at("column"), at::full({6}, -1.0f)));
}

TEST(TorchCheckpoint, TensorsViewTheMappingAndWritesStayPrivate) {
    at::Tensor base;
    {
        const auto t = flatten_tensors(load_torch_checkpoint(fixture("views.pt")));
        base = t.at("base");
    }
    // torch aligns records to 64 bytes, so the tensor points into the page-aligned mapping.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(base.data_ptr()) % 64, 0u);
    base.zero_();  // outlives the checkpoint object; must not reach the file
    const auto again = flatten_tensors(load_torch_checkpoint(fixture("views.pt")));
    EXPECT_NE(again.at("base").sum().item<double>(), 0.0);
    expect_saved_values("views", again);
}

TEST(TorchCheckpoint, ReadsZip64ArchivesAlignedOrNot) {
    expect_saved_values("zip64", flatten_tensors(load_torch_checkpoint(fixture("zip64.pt"))));
    const auto unaligned = flatten_tensors(load_torch_checkpoint(fixture("zip64_unaligned.pt")));
    expect_saved_values("zip64_unaligned", unaligned);
    EXPECT_TRUE(unaligned.at("weight").is_contiguous());
}

TEST(TorchCheckpoint, RefusesEveryGlobalOutsideTheAllowList) {
    const std::filesystem::path marker = "/tmp/qvg-pwned";
    std::error_code ec;
    std::filesystem::remove(marker, ec);
    expect_load_error(fixture("hostile_posix_system.pt"), "'posix.system'");
    expect_load_error(fixture("hostile_os_system.pt"), "'os.system'");
    expect_load_error(fixture("hostile_eval.pt"), "'__builtin__.eval'");
    expect_load_error(fixture("hostile_builtins_eval.pt"), "'builtins.eval'");
    expect_load_error(fixture("hostile_stack_global.pt"), "'subprocess.Popen'");
    expect_load_error(fixture("hostile_eval.pt"), "refuses to load");
    EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(TorchCheckpoint, RejectsMalformedPickles) {
    expect_load_error(fixture("cyclic.pt"), "cycle");
    expect_load_error(fixture("truncated_pickle.pt"), "truncated");
    expect_load_error(fixture("unknown_opcode.pt"), "unsupported pickle opcode 0x81");
}

TEST(TorchCheckpoint, RejectsInconsistentStorages) {
    expect_load_error(fixture("missing_storage.pt"), "has no record");
    expect_load_error(fixture("short_storage.pt"), "needs 16 bytes but its record has 8");
    expect_load_error(fixture("bad_view.pt"), "reaches element 12 of storage");
}

TEST(TorchCheckpoint, RejectsOtherFormatsWithAReason) {
    expect_load_error(fixture("compressed.pt"), "is compressed (zip method 8, deflate)");
    expect_load_error(fixture("legacy.pt"), "legacy torch.save format");
    expect_load_error(fixture("expected.safetensors"), "no zip end-of-central-directory record");
    EXPECT_THROW(load_torch_checkpoint(fixture("does_not_exist.pt")), Error);
}

TEST(TorchCheckpoint, RejectsTruncatedAndCorruptedZips) {
    TempDir dir;
    const std::string bytes = read_file(fixture("plain.pt"));
    ASSERT_GT(bytes.size(), 1000u);
    const auto path = dir.path() / "bad.pt";

    write_file(path, "");
    expect_load_error(path, "empty");
    write_file(path, bytes.substr(0, 10));
    expect_load_error(path, "fewer than a zip end record");
    // Every cut, whichever structure it lands in, must give a FormatError and nothing worse.
    for (size_t cut = 22; cut < bytes.size(); cut += 37) {
        write_file(path, bytes.substr(0, cut));
        EXPECT_NE(load_error(path), "(no FormatError)") << "cut at " << cut;
    }
    write_file(path, bytes.substr(0, bytes.size() / 2));
    expect_load_error(path, "truncated");

    // Overwrites one byte at the first occurrence of `marker` (plus `skip`) in the good file.
    auto corrupt_at = [&](const std::string& marker, size_t skip, const std::string& fragment) {
        std::string corrupt = bytes;
        const size_t at = corrupt.find(marker);
        ASSERT_NE(at, std::string::npos) << marker;
        corrupt[at + skip] = 'X';
        write_file(path, corrupt);
        expect_load_error(path, fragment);
    };
    corrupt_at(std::string("PK\x01\x02", 4), 2, "central directory entry 0");
    corrupt_at("patch_embedding", 0, "CRC-32");  // a flipped byte inside the pickle
    corrupt_at("plain/data.pkl", 0, "local header names a different file");
}

TEST(TorchCheckpoint, FlattenJoinsKeysAndIndices) {
    const CheckpointValue tree = CheckpointValue::dict(
        {"a", "b", "n"},
        {CheckpointValue::dict({"x"}, {CheckpointValue::tensor(at::ones({2}))}),
         CheckpointValue::list({CheckpointValue::tensor(at::zeros({1})), CheckpointValue::none()}),
         CheckpointValue::integer(5)});
    const auto flat = flatten_tensors(tree);
    ASSERT_EQ(flat.size(), 2u);
    EXPECT_TRUE(at::equal(flat.at("a.x"), at::ones({2})));
    EXPECT_TRUE(at::equal(flat.at("b.0"), at::zeros({1})));
    EXPECT_EQ(flatten_tensors(tree, "root").count("root.a.x"), 1u);

    const CheckpointValue clash = CheckpointValue::dict(
        {"a.x", "a"}, {CheckpointValue::tensor(at::ones({1})),
                       CheckpointValue::dict({"x"}, {CheckpointValue::tensor(at::ones({1}))})});
    EXPECT_THROW(flatten_tensors(clash), FormatError);
}

}  // namespace
}  // namespace qvg::core
