// The protomodel command line: a thin layer over the libraries. Only rank 0 prints.
import ArgumentParser
import Foundation

struct Protomodel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protomodel",
        abstract: "Pipeline-parallel GPT training over slow links with Protocol Models compression.",
        subcommands: [Prepare.self, Train.self, Bench.self, Sample.self, Schedule.self, BenchEngine.self])
}

/// This process's rank as the launcher tells it (before MPI starts): under mpirun or srun
/// only rank 0 reports argument errors, so S ranks do not print S copies.
func launcherRank() -> Int {
    let env = ProcessInfo.processInfo.environment
    for k in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"] {
        if let v = env[k], let r = Int(v) { return r }
    }
    return 0
}

@main
enum Entry {
    static func main() {
        do {
            var command = try Protomodel.parseAsRoot()
            try command.run()
        } catch let e as ExitCode where e.rawValue != 0 && e.rawValue != 1 {
            Foundation.exit(e.rawValue)  // a deliberate status, e.g. 75 after a signal-triggered checkpoint
        } catch let e as StartupFailure where e.message == nil {
            Foundation.exit(1)  // rank 0 reports the cause
        } catch {
            if launcherRank() == 0 {
                if let s = error as? StartupFailure { FileHandle.standardError.write(Data("Error: \(s)\n".utf8)); Foundation.exit(1) }
                Protomodel.exit(withError: error)
            }
            Foundation.exit(Protomodel.exitCode(for: error).rawValue == 0 ? 0 : 1)
        }
    }
}
