// The viewer's default-model lookup: $QVG_WORLD_MODEL, then the installed share directory, then
// the source tree's assets; files that do not exist are skipped.

#include "default_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace qvg::app {
namespace {

namespace fs = std::filesystem;

class DefaultModel : public ::testing::Test {
  protected:
    void SetUp() override {
        root_ = fs::temp_directory_path() /
                ("qvg_default_model_" + std::to_string(::testing::UnitTest::GetInstance()
                                                           ->random_seed()) +
                 "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(root_);
        exe_dir_ = root_ / "install" / "bin";
        source_dir_ = root_ / "src";
        fs::create_directories(exe_dir_);
        fs::create_directories(source_dir_);
        env_file_ = root_ / "chosen.safetensors";
        installed_ = root_ / "install" / "share" / "qvg" / "world" / "world_model.safetensors";
        in_source_ = source_dir_ / "assets" / "world" / "world_model.safetensors";
    }
    void TearDown() override { fs::remove_all(root_); }

    static void touch(const fs::path& p) {
        fs::create_directories(p.parent_path());
        std::ofstream(p) << "x";
    }
    std::optional<fs::path> find(const char* env) const {
        return find_default_model(env, exe_dir_, source_dir_);
    }

    fs::path root_, exe_dir_, source_dir_, env_file_, installed_, in_source_;
};

TEST_F(DefaultModel, NothingFoundMeansTheTestModel) {
    EXPECT_FALSE(find(nullptr).has_value());
    EXPECT_FALSE(find("").has_value());
    EXPECT_FALSE(find(env_file_.c_str()).has_value()) << "a missing $QVG_WORLD_MODEL was taken";
}

TEST_F(DefaultModel, EnvironmentWinsOverEverything) {
    touch(env_file_);
    touch(installed_);
    touch(in_source_);
    ASSERT_TRUE(find(env_file_.c_str()).has_value());
    EXPECT_EQ(*find(env_file_.c_str()), env_file_);
}

TEST_F(DefaultModel, InstalledFileComesBeforeTheSourceTree) {
    touch(installed_);
    touch(in_source_);
    ASSERT_TRUE(find(nullptr).has_value());
    EXPECT_TRUE(fs::equivalent(*find(nullptr), installed_));
    // A set but missing $QVG_WORLD_MODEL is skipped, not an error.
    ASSERT_TRUE(find(env_file_.c_str()).has_value());
    EXPECT_TRUE(fs::equivalent(*find(env_file_.c_str()), installed_));
}

TEST_F(DefaultModel, SourceTreeIsTheLastPlace) {
    touch(in_source_);
    ASSERT_TRUE(find(env_file_.c_str()).has_value());
    EXPECT_EQ(*find(env_file_.c_str()), in_source_);
    // A directory where the file should be does not count.
    fs::remove(in_source_);
    fs::create_directories(in_source_);
    EXPECT_FALSE(find(nullptr).has_value());
}

}  // namespace
}  // namespace qvg::app
