#include "commands.h"

#include <map>

namespace qvg::cli {
namespace {
std::map<CLI::App*, std::function<int()>>& runners() {
    static std::map<CLI::App*, std::function<int()>> r;
    return r;
}
}  // namespace

std::vector<Register>& command_registry() {
    static std::vector<Register> registry;
    return registry;
}

void on_selected(CLI::App* sub, std::function<int()> run) { runners()[sub] = std::move(run); }

int run_selected(CLI::App& app) {
    for (CLI::App* sub : app.get_subcommands()) {
        auto it = runners().find(sub);
        if (it != runners().end()) return it->second();
    }
    return 2;
}

}  // namespace qvg::cli
