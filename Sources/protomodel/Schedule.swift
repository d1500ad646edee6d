// `protomodel schedule`: prints a schedule's grid and checks it, with no MPI.
import ArgumentParser
import ProtoPipeline

struct Schedule: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the per-stage action grid of a pipeline schedule and check it (no MPI).")

    @Option(help: "Pipeline stages (ranks).") var stages: Int = 4
    @Option(help: "Micro-batches per step.") var microbatches: Int = 8
    @Option(help: "gpipe or 1f1b.") var schedule: ScheduleKind = .oneFOneB
    @Flag(help: "Also list every stage's actions, including sends and receives.") var actions = false

    mutating func validate() throws {
        if !(1...256).contains(stages) { throw ValidationError("--stages must be in 1...256") }
        if !(1...8192).contains(microbatches) { throw ValidationError("--microbatches must be in 1...8192") }
    }

    func run() throws {
        let sched = PipelineSchedule(kind: schedule, stages: stages, microbatches: microbatches)
        let r = ScheduleSimulator.run(sched)
        print("\(schedule.rawValue): \(stages) stages × \(microbatches) micro-batches (F = 1 tick, B = 2 ticks)")
        print(ScheduleSimulator.grid(r), terminator: "")
        print(String(format: "makespan %d ticks, bubble %.1f%%, activations held per stage: %@", r.makespan, 100 * r.bubbleShare,
                     r.maxInFlight.map(String.init).joined(separator: " ")))
        if actions {
            for s in 0..<stages { print("stage \(s): " + sched.actions(stage: s).map(\.description).joined(separator: " ")) }
        }
        if r.problems.isEmpty { print("checks: ok (order, matched sends, in-flight bound, no deadlock)") }
        else { throw ValidationError("schedule problems:\n" + r.problems.joined(separator: "\n")) }
    }
}
