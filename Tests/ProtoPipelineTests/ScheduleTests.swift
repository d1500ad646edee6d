// Schedules are data: checked here with no communication at all.
import XCTest
@testable import ProtoPipeline

final class ScheduleTests: XCTestCase {
    func testEverySchedulePassesTheSimulator() {
        for kind in ScheduleKind.allCases {
            for S in 1...8 {
                for M in [1, 2, 3, S, 2 * S + 1] {
                    let r = ScheduleSimulator.run(PipelineSchedule(kind: kind, stages: S, microbatches: M))
                    XCTAssertEqual(r.problems, [], "\(kind) S=\(S) M=\(M)")
                    XCTAssertGreaterThan(r.makespan, 0)
                }
            }
        }
    }

    func testOneFOneBPhasesAndMemoryBound() {
        let sched = PipelineSchedule(kind: .oneFOneB, stages: 4, microbatches: 8)
        // Stage 1: warm-up of S − s − 1 = 2 forwards, then F/B alternating, then 2 backwards.
        let compute = sched.actions(stage: 1).filter(\.isCompute).map(\.description)
        XCTAssertEqual(compute, ["F0", "F1", "F2", "B0", "F3", "B1", "F4", "B2", "F5", "B3", "F6", "B4", "F7", "B5", "B6", "B7", "OPT"])
        XCTAssertEqual((0..<4).map { sched.maxInFlight(stage: $0) }, [4, 3, 2, 1])
        let gpipe = PipelineSchedule(kind: .gpipe, stages: 4, microbatches: 8)
        XCTAssertEqual((0..<4).map { gpipe.maxInFlight(stage: $0) }, [8, 8, 8, 8])
    }

    func testSimulatorCatchesBrokenSchedules() {
        let sched = PipelineSchedule(kind: .gpipe, stages: 2, microbatches: 2)
        // Stage 1 waits for micro-batch 1's forward before 0's: receives out of send order
        // with blocking receives is fine here, but backward before forward is not.
        var a0 = sched.actions(stage: 0), a1 = sched.actions(stage: 1)
        let bad = ScheduleSimulator.run(sched, actions: [a0, a1.filter { $0 != .forward(1) } + [.forward(1)]])
        XCTAssert(bad.problems.contains { $0.contains("B1 before F1") }, "\(bad.problems)")
        // A receive whose send never happens is unmatched, and the run deadlocks.
        a0.removeAll { $0 == .sendForward(1) }
        let dead = ScheduleSimulator.run(sched, actions: [a0, a1])
        XCTAssert(dead.problems.contains { $0.contains("deadlock") }, "\(dead.problems)")
        XCTAssert(dead.problems.contains { $0.contains("0 matching sends") }, "\(dead.problems)")
        // Both stages receive before they send: a cycle.
        a1 = [.recvBackward(0)]
        let cyc = ScheduleSimulator.run(PipelineSchedule(kind: .gpipe, stages: 2, microbatches: 1),
                                        actions: [[.recvBackward(0), .sendForward(0)], [.recvForward(0), .sendBackward(0)]])
        XCTAssert(cyc.problems.contains { $0.contains("deadlock") }, "\(cyc.problems)")
    }

    func testBubbleShrinksWithMoreMicrobatches() {
        let few = ScheduleSimulator.run(PipelineSchedule(kind: .oneFOneB, stages: 4, microbatches: 4))
        let many = ScheduleSimulator.run(PipelineSchedule(kind: .oneFOneB, stages: 4, microbatches: 16))
        XCTAssertLessThan(many.bubbleShare, few.bubbleShare)
        // GPipe and 1F1B have the same bubble with these costs; 1F1B holds fewer activations.
        let g = ScheduleSimulator.run(PipelineSchedule(kind: .gpipe, stages: 4, microbatches: 8))
        let o = ScheduleSimulator.run(PipelineSchedule(kind: .oneFOneB, stages: 4, microbatches: 8))
        XCTAssertEqual(g.makespan, o.makespan)
        XCTAssertLessThan(o.maxInFlight.max()!, g.maxInFlight.max()!)
        XCTAssert(ScheduleSimulator.grid(o).contains("stage 3 |"))
    }
}
