// The protomodel command line: a thin layer over the libraries. Only rank 0 prints.
import ArgumentParser
import Foundation
import ProtoMPI

struct Protomodel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protomodel",
        abstract: "Pipeline-parallel GPT training over slow links with Protocol Models compression.",
        subcommands: [Prepare.self, Train.self, Bench.self, Speedrun.self, Converge.self, Compare.self, LinkReport.self, Sample.self, Export.self, Eval.self, Schedule.self, BenchEngine.self],
        defaultSubcommand: Train.self)
}

/// This process's rank and the job's size as the launcher tells them (before MPI starts):
/// under mpirun or srun only rank 0 reports argument errors, so S ranks do not print S copies.
func launcherRank() -> Int { launcherValue(["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"]) ?? 0 }
func launcherSize() -> Int { launcherValue(["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]) ?? 1 }

private func launcherValue(_ keys: [String]) -> Int? {
    let env = ProcessInfo.processInfo.environment
    for k in keys { if let v = env[k], let n = Int(v) { return n } }
    return nil
}

/// Every rank failed on the same bad arguments, before MPI started. Rank 0 has printed the
/// reason; all ranks meet once so none exits (and makes mpirun kill the job) before that.
func leaveTogether() {
    guard launcherSize() > 1, !MPIEnv.isFinalized else { return }
    if (try? MPIEnv.initialize()) != nil {
        MPIEnv.barrier()
        MPIEnv.finalize()
    }
}

@main
enum Entry {
    static func main() {
        // Line by line even into a file or a pipe (Slurm output, `| tee`): progress must show as it happens.
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var command = try Protomodel.parseAsRoot()
            // The reports' revision is the tree the run starts from (before MPI starts: no fork after it).
            if command is Bench || command is Speedrun || command is Converge || command is Train { _ = RunInfo.gitRevision }
            do { try command.run() } catch let v as ValidationError {
                // Parsing is over: the root command's usage line would only mislead.
                throw CLIError(v.message)
            }
        } catch let e as ExitCode where e.rawValue != 0 && e.rawValue != 1 {
            Foundation.exit(e.rawValue)  // a deliberate status, e.g. 75 after a signal-triggered checkpoint
        } catch is ReportedFailure {
            Foundation.exit(1)  // rank 0 reported it; every rank is leaving together
        } catch {
            let code = Protomodel.exitCode(for: error)
            if launcherRank() == 0 {
                let message = Protomodel.fullMessage(for: error)
                if !message.isEmpty {
                    if code == .success { print(message) } else { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
                }
            }
            if code != .success { leaveTogether() }
            Foundation.exit(code.rawValue == 0 ? 0 : 1)
        }
    }
}
