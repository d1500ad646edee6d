// A small line-plot writer: standalone SVG that any browser shows without extra software.
import Foundation

public struct SVGPlot {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var dashed: Bool
        public init(name: String, points: [(x: Double, y: Double)], dashed: Bool = false) {
            self.name = name; self.points = points; self.dashed = dashed
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX: Bool
    public var series: [Series]
    public var width = 760.0, height = 440.0

    public init(title: String, xLabel: String, yLabel: String, logX: Bool = false, series: [Series]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.logX = logX; self.series = series
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    public func render() -> String {
        let left = 70.0, right = 190.0, top = 40.0, bottom = 55.0
        let pw = width - left - right, ph = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
        func tx(_ x: Double) -> Double { logX ? log10(x) : x }
        var x0 = all.map { tx($0.x) }.min() ?? 0, x1 = all.map { tx($0.x) }.max() ?? 1
        var y0 = all.map(\.y).min() ?? 0, y1 = all.map(\.y).max() ?? 1
        if x1 - x0 < 1e-12 { x0 -= 0.5; x1 += 0.5 }
        if y1 - y0 < 1e-12 { y0 -= 0.5; y1 += 0.5 }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        if !logX { x0 = min(x0, 0) }
        func px(_ x: Double) -> Double { left + (tx(x) - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(left + pw / 2))" y="22" text-anchor="middle" font-size="15">\(esc(title))</text>
        <rect x="\(f(left))" y="\(f(top))" width="\(f(pw))" height="\(f(ph))" fill="none" stroke="#444"/>

        """
        // Ticks and grid.
        for i in 0...5 {
            let yv = y0 + (y1 - y0) * Double(i) / 5
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(py(yv)))\" y2=\"\(f(py(yv)))\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(yv) + 4))\" text-anchor=\"end\">\(Self.tick(yv))</text>\n"
        }
        if logX {
            var e = floor(x0)
            while e <= ceil(x1) {
                if e >= x0 - 1e-9 && e <= x1 + 1e-9 {
                    let xv = pow(10, e)
                    s += "<line x1=\"\(f(px(xv)))\" x2=\"\(f(px(xv)))\" y1=\"\(f(top))\" y2=\"\(f(top + ph))\" stroke=\"#ddd\"/>"
                    s += "<text x=\"\(f(px(xv)))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\">\(Self.tick(xv))</text>\n"
                }
                e += 1
            }
        } else {
            for i in 0...5 {
                let xv = x0 + (x1 - x0) * Double(i) / 5
                s += "<line x1=\"\(f(px(xv)))\" x2=\"\(f(px(xv)))\" y1=\"\(f(top))\" y2=\"\(f(top + ph))\" stroke=\"#ddd\"/>"
                s += "<text x=\"\(f(px(xv)))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\">\(Self.tick(xv))</text>\n"
            }
        }
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        s += "<text transform=\"translate(16,\(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel))</text>\n"
        for (i, ser) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let pts = ser.points.filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
            let path = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(ser.dashed ? " stroke-dasharray=\"6,4\"" : "") points=\"\(path)\"/>\n"
            for p in pts where pts.count <= 40 {
                s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(color)\"/>"
            }
            let ly = top + 14 + Double(i) * 18
            s += "\n<line x1=\"\(f(left + pw + 12))\" x2=\"\(f(left + pw + 36))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(ser.dashed ? " stroke-dasharray=\"6,4\"" : "")/>"
            s += "<text x=\"\(f(left + pw + 42))\" y=\"\(f(ly))\">\(esc(ser.name))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    /// A compact tick label: 3 significant digits, SI suffixes for large values.
    static func tick(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e9 { return String(format: "%.3gG", v / 1e9) }
        if a >= 1e6 { return String(format: "%.3gM", v / 1e6) }
        if a >= 1e4 { return String(format: "%.3gk", v / 1e3) }
        return String(format: "%.3g", v)
    }
}
