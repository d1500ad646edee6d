// The link emulator's arithmetic (SPEC §5) on known message sequences, link parsing, and
// the emulated time of real pipeline steps.
import XCTest
import ProtoCore
@testable import ProtoPipeline

final class LinkEmulatorTests: XCTestCase {
    /// Every tag any message can carry stays within 0...32767 (what every MPI guarantees),
    /// also for indices past the stride, and names its kind back.
    func testEveryMessageTagIsWithinTheMPIBound() {
        for kind in MessageKind.allCases {
            for index in [0, 1, 4095, 4096, 70_000, Int(Int32.max)] {
                let tag = kind.tag(index)
                XCTAssert((0...32767).contains(tag), "\(kind) index \(index): tag \(tag)")
                XCTAssertEqual(MessageKind(rawValue: UInt32(tag / MessageKind.stride)), kind)
            }
        }
        XCTAssert(MessageKind.describe(tag: MessageKind.backward.tag(3)).contains("backward"))
    }

    /// A gather whose ranks are at different gathers stops at the root naming the rank,
    /// instead of reading one gather's bytes as another's.
    func testGathersOutOfStepAreCaught() throws {
        let hub = InMemoryHub(size: 3)
        hub.timeout = 5
        let links = hub.links()
        nonisolated(unsafe) var results = [Result<[Data]?, Error>?](repeating: nil, count: 3)
        let lock = NSLock()
        try runOnThreads(3) { r in
            let purpose = r == 2 ? "checkpoint files" : "stage metrics"
            let out = Result { try links[r].gatherData(Data([UInt8(r)]), root: 0, purpose: purpose) }
            lock.lock(); results[r] = out; lock.unlock()
        }
        XCTAssertThrowsError(try results[0]!.get()) {
            XCTAssert("\($0)".contains("gathering stage metrics got another gather's message from rank 2"), "\($0)")
        }
        // In step: every rank's bytes in rank order.
        try runOnThreads(3) { r in
            let all = try links[r].gatherData(Data([UInt8(10 + r)]), root: 0, purpose: "stage metrics")
            if r == 0 { XCTAssertEqual(all, [Data([10]), Data([11]), Data([12])]) } else { XCTAssertNil(all) }
        }
        XCTAssertNotEqual(InMemoryLink.purposeMark("stage metrics"), InMemoryLink.purposeMark("checkpoint files"))
    }

    func testParsing() throws {
        let a = try LinkModel.parse("80mbit")
        XCTAssertEqual(a.bitsPerSecond, 80e6); XCTAssertEqual(a.latency, 0)
        let b = try LinkModel.parse("200mbit:50ms")
        XCTAssertEqual(b.bitsPerSecond, 200e6); XCTAssertEqual(b.latency, 0.05, accuracy: 1e-15)
        let c = try LinkModel.parse("1gbit:1ms")
        XCTAssertEqual(c.bitsPerSecond, 1e9); XCTAssertEqual(c.latency, 0.001, accuracy: 1e-15)
        XCTAssertEqual(try LinkModel.parse("500kbit:0.2s").latency, 0.2, accuracy: 1e-15)
        XCTAssertTrue(try LinkModel.parse("off").isOff)
        let p = try LinkModel.parse("speedrun")
        XCTAssertEqual(p.name, "speedrun"); XCTAssertEqual(p.bitsPerSecond, 200e6); XCTAssertEqual(p.latency, 0.05, accuracy: 1e-15)
        for bad in ["80mb", "fast", "0mbit", "80mbit:50", "80mbit:50ms:1", "-5mbit", ""] {
            XCTAssertThrowsError(try LinkModel.parse(bad), bad) { XCTAssert("\($0)".contains("BANDWIDTH[:LATENCY]"), "\($0)") }
        }
    }

    func testKnownMessageSequence() {
        // 8 Mbit/s: one byte takes 1 µs; 10 ms latency.
        let link = LinkModel(name: "t", bitsPerSecond: 8e6, latency: 0.010)
        var inb = InboundLink()
        XCTAssertEqual(inb.arrival(sentAt: 0, bytes: 1000, link: link), 0.011, accuracy: 1e-12)
        // Sent while the link is busy: queued behind the first.
        XCTAssertEqual(inb.arrival(sentAt: 0.0005, bytes: 2000, link: link), 0.023, accuracy: 1e-12)
        // Sent after the link is free again.
        XCTAssertEqual(inb.arrival(sentAt: 0.1, bytes: 1000, link: link), 0.111, accuracy: 1e-12)
        XCTAssertEqual(inb.freeAt, 0.111, accuracy: 1e-12)
        var off = InboundLink()
        XCTAssertEqual(off.arrival(sentAt: 0.3, bytes: 1 << 30, link: .off), 0.3)
    }

    func testStreamingModelOverlapsLatencyWithTransfer() {
        // 8 Mbit/s (1 µs per byte), 10 ms latency. Back to back on the wire; each arrives 10 ms
        // after its last byte left.
        let link = LinkModel(name: "t", bitsPerSecond: 8e6, latency: 0.010, kind: .streaming)
        var inb = InboundLink()
        XCTAssertEqual(inb.arrival(sentAt: 0, bytes: 1000, link: link), 0.011, accuracy: 1e-12)
        XCTAssertEqual(inb.freeAt, 0.001, accuracy: 1e-12, "the wire is free once the bytes left")
        // Sent at 0.5 ms: waits for the first transfer (until 1 ms), 2 ms on the wire, +10 ms.
        XCTAssertEqual(inb.arrival(sentAt: 0.0005, bytes: 2000, link: link), 0.013, accuracy: 1e-12)
        // The speedrun model holds the link until arrival: the same pair arrives at 11 ms and 23 ms.
        var sr = InboundLink()
        let srl = LinkModel(name: "t", bitsPerSecond: 8e6, latency: 0.010)
        _ = sr.arrival(sentAt: 0, bytes: 1000, link: srl)
        XCTAssertEqual(sr.arrival(sentAt: 0.0005, bytes: 2000, link: srl), 0.023, accuracy: 1e-12)
    }

    func testLinkPerBoundary() throws {
        let l = try LinkModel.parse("8mbit:10ms/80mbit:1ms")
        XCTAssertEqual(l.boundaries?.count, 2)
        XCTAssertEqual(l.link(boundary: 1).bitsPerSecond, 80e6)
        XCTAssertEqual(l.bitsPerSecond, 8e6, "tables show the slowest boundary")
        XCTAssertThrowsError(try LinkModel.parse("8mbit/fast"))
        // A stage between the two boundaries: its forward input crosses boundary 0 (8 Mbit/s,
        // 1 µs per byte, 10 ms), its backward input boundary 1 (80 Mbit/s, 1 ms), each with its own queue.
        let t = EmulatedTime(mode: .virtual, links: [l])
        t.beginStep()
        try t.received(stamps: [0], bytes: 1000, boundary: 0)
        XCTAssertEqual(t.clocks[0], 0.011, accuracy: 1e-12)
        try t.received(stamps: [0], bytes: 1000, boundary: 1, fromLaterStage: true)
        XCTAssertEqual(t.clocks[0], 0.011, accuracy: 1e-12, "boundary 1's message arrived at 1.1 ms, on its own queue")
        var streaming = l
        streaming.kind = .streaming
        XCTAssertEqual(streaming.link(boundary: 0).kind, .streaming, "the link model applies to every boundary")
    }

    func testEachDirectionQueuesItsOwnSendersMessagesInSendOrder() throws {
        // One link (8 Mbit/s: 1 µs per byte, 10 ms latency), a middle stage receiving an
        // activation over boundary 0 and a gradient over boundary 1, both sent at 0.
        let link = LinkModel(name: "t", bitsPerSecond: 8e6, latency: 0.010)
        let t = EmulatedTime(mode: .virtual, links: [link])
        t.beginStep()
        try t.received(stamps: [0], bytes: 1000, boundary: 0)
        try t.received(stamps: [0], bytes: 1000, boundary: 1, fromLaterStage: true)
        XCTAssertEqual(t.clocks[0], 0.011, accuracy: 1e-12, "different senders do not queue behind each other")
        // A second activation sent at 1 ms queues behind the first (which holds the link until 11 ms).
        try t.received(stamps: [0.001], bytes: 2000, boundary: 0)
        XCTAssertEqual(t.clocks[0], 0.011 + 0.002 + 0.010, accuracy: 1e-12)
        XCTAssertEqual(t.inbound[0].values.map(\.outOfOrder), [0, 0])
        // Taking a message sent before one already charged is recorded (the schedules never do).
        try t.received(stamps: [0.0005], bytes: 10, boundary: 0)
        XCTAssertEqual(t.inbound[0][0]?.outOfOrder, 1)
    }

    func testPipelineStepsChargeEveryLinkInSendOrder() throws {
        var (cfg, tc) = pipelineConfig()
        cfg.subspace = nil
        tc.microbatches = 6
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 2, seed: 3)
        let link = LinkModel(name: "t", bitsPerSecond: 1e6, latency: 0.003)
        for kind in ScheduleKind.allCases {
            let p = try InProcessPipeline(config: cfg, split: [1, 1, 1, 1], train: tc, schedule: kind, links: [link]) { _ in DenseCodec() }
            _ = stepTimes(p, data)
            for (s, stage) in p.stages.enumerated() {
                let queues = stage.time.inbound[0]
                XCTAssertEqual(queues.count, s == 0 || s == 3 ? 1 : 2, "\(kind) stage \(s): one queue per neighbour")
                for (q, l) in queues { XCTAssertEqual(l.outOfOrder, 0, "\(kind) stage \(s) queue \(q)") }
            }
        }
    }

    func testStageSpeedScalesComputeOnTheVirtualClock() throws {
        XCTAssertEqual(try StageSpeed.parse("30tflops"), .target(flops: 30e12))
        XCTAssertEqual(try StageSpeed.parse("x1000"), .speedup(1000))
        XCTAssertEqual(try StageSpeed.parse("native"), .native)
        for bad in ["fast", "30tflop", "x0", "-5tflops", "x"] { XCTAssertThrowsError(try StageSpeed.parse(bad), bad) }
        // A 100 GFLOP/s core emulating 30 TFLOP/s stages: one CPU second costs 1/300 s.
        XCTAssertEqual(StageSpeed.target(flops: 30e12).scale(coreFlops: 100e9), 1.0 / 300, accuracy: 1e-15)
        XCTAssertEqual(StageSpeed.speedup(1000).scale(coreFlops: 1), 0.001)
        let t = EmulatedTime(mode: .virtual, links: [.off], computeScale: 0.01)
        t.compute(2)
        XCTAssertEqual(t.clocks[0], 0.02, accuracy: 1e-15)
        XCTAssertEqual(StageSpeed.target(flops: 30e12).description, "30 TFLOP/s")
    }

    func testVirtualClockSplitsWaitingIntoLinkAndBubble() throws {
        let link = LinkModel(name: "t", bitsPerSecond: 8e6, latency: 0.010)
        let t = EmulatedTime(mode: .virtual, links: [link, .off])
        t.beginStep()
        t.compute(0.5)
        XCTAssertEqual(t.clocks, [0.5, 0.5])
        // Already arrived by the time we look (0.2 + 0.011 < 0.5): no waiting.
        try t.received(stamps: [0.2, 0.2], bytes: 1000)
        XCTAssertEqual(t.clocks, [0.5, 0.5])
        // Sent in our future: 0.1 s of bubble, then 11 ms on the link (none when off).
        try t.received(stamps: [0.6, 0.6], bytes: 1000)
        XCTAssertEqual(t.clocks[0], 0.611, accuracy: 1e-12)
        XCTAssertEqual(t.clocks[1], 0.6, accuracy: 1e-12)
        XCTAssertEqual(t.timing[0].bubbleWait, 0.1, accuracy: 1e-12)
        XCTAssertEqual(t.timing[0].linkWait, 0.011, accuracy: 1e-12)
        XCTAssertEqual(t.timing[1].linkWait, 0)
        // The all-reduce: latest clock plus 2·⌈log2 8⌉ scalar hops.
        t.allreduced(maxClocks: [1.0, 0.9], ranks: 8)
        XCTAssertEqual(t.clocks[0], 1.0 + 6 * (0.010 + 64 / 8e6), accuracy: 1e-12)
        XCTAssertEqual(t.clocks[1], 0.9)
        // Evaluation leaves no trace.
        let before = t.clocks
        t.suspend(); t.compute(5); try t.received(stamps: [9, 9], bytes: 10); t.resume()
        XCTAssertEqual(t.clocks, before)
        XCTAssertThrowsError(try t.received(stamps: [1], bytes: 10)) { XCTAssert("\($0)".contains("clock stamp")) }
    }

    /// Emulated step time of an in-process pipeline on link i: the latest rank's clock.
    func stepTimes(_ p: InProcessPipeline, _ data: [[Microbatch]]) -> [[Double]] {
        var prev = [Double](repeating: 0, count: p.stages[0].time.links.count)
        return data.enumerated().map { s, batch in
            _ = p.step(s, batch)
            return prev.indices.map { i in
                let end = p.lastMetrics.map { $0.timing[i].clockEnd }.max()!
                defer { prev[i] = end }
                return end - prev[i]
            }
        }
    }

    func testSlowLinkChargesBytesAndCompressionHelps() throws {
        var (cfg, tc) = pipelineConfig()
        cfg.subspace = nil
        let data = syntheticBatches(cfg, B: tc.batchSize, M: tc.microbatches, steps: 2, seed: 1)
        // 1 Mbit/s: a dense message of N·d·4 bytes takes ~8 ms per KB, far above compute.
        let slow = LinkModel(name: "1mbit", bitsPerSecond: 1e6, latency: 0)
        let dense = try InProcessPipeline(config: cfg, split: [2, 2], train: tc, schedule: .oneFOneB, links: [.off, slow]) { _ in DenseCodec() }
        let td = stepTimes(dense, data).last!
        let N = tc.batchSize * cfg.seqLen
        let msg = Double(WireBuffer.headerBytes + 4 * N * cfg.dModel) * 8 / 1e6
        // M forward messages into stage 1 and M backward into stage 0, each on its own inbound link.
        XCTAssertGreaterThanOrEqual(td[1], Double(tc.microbatches) * msg, "a 1 Mbit/s link carries every message")
        XCTAssertLessThan(td[0], td[1])
        var scfg = cfg
        scfg.subspace = SubspaceConfig(rank: 2, mode: .reparam)
        let sub = try InProcessPipeline(config: scfg, split: [2, 2], train: tc, schedule: .oneFOneB, links: [.off, slow]) { SubspaceCodec(subspace: $0.subspace!) }
        let ts = stepTimes(sub, data).last!
        XCTAssertLessThan(ts[1], td[1] / 2, "k=2 of d=16 sends far fewer bytes")
        let linkShare = dense.lastMetrics.map { $0.timing[1].linkWait }.reduce(0, +)
        XCTAssertGreaterThan(linkShare, 0, "time waiting on the link is reported")
    }

    func testSleepClockWaitsOnTheWallClock() throws {
        let (cfg, tc) = pipelineConfig()
        var one = tc; one.microbatches = 1
        let data = syntheticBatches(cfg, B: one.batchSize, M: 1, steps: 1, seed: 1)
        let lat = LinkModel(name: "20ms", bitsPerSecond: nil, latency: 0.02)
        let p = try InProcessPipeline(config: cfg, split: [2, 2], train: one, schedule: .oneFOneB, links: [lat], clock: .sleep) { _ in DenseCodec() }
        let t0 = Clock.wall()
        _ = p.step(0, data[0])
        // Forward and backward each cross one 20 ms link, then the 2-rank all-reduce costs 2 hops.
        XCTAssertGreaterThanOrEqual(Clock.wall() - t0, 0.08)
        // Stage 0 waits for its gradient: a forward hop, stage 1's compute and a backward hop.
        let t0w = p.lastMetrics[0].timing[0]
        XCTAssertGreaterThanOrEqual(t0w.linkWait + t0w.bubbleWait, 0.035)
        XCTAssertGreaterThan(t0w.linkWait, 0, "time in flight is charged to the link")
    }
}

final class SteadyStateTests: XCTestCase {
    func testWarmupIsIgnored() {
        // 20 slow warm-up steps, then a steady 1.0 s with ±0.2 % noise.
        let warm: [Double] = (0..<20).map { (i: Int) -> Double in 3.0 - Double(i) * 0.1 }
        let steady: [Double] = (0..<40).map { (i: Int) -> Double in i % 2 == 0 ? 1.002 : 0.998 }
        let times = warm + steady
        let s = SteadyState.detect(times)
        XCTAssertTrue(s.reached)
        XCTAssertEqual(s.fromStep, 20)
        XCTAssertEqual(s.seconds, 1.0, accuracy: 1e-9)
    }

    func testNoSteadyStateFallsBackToTheLastHalf() {
        let times: [Double] = (0..<40).map { (i: Int) -> Double in 1.0 + Double(i) * 0.1 }  // always slowing down
        let s = SteadyState.detect(times)
        XCTAssertFalse(s.reached)
        XCTAssertEqual(s.fromStep, 20)
        let expect: Double = times[20...].reduce(0, +) / 20
        XCTAssertEqual(s.seconds, expect, accuracy: 1e-9)
    }
}
