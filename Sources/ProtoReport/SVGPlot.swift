// A small plot writer: standalone SVG (lines, markers, point labels) that any browser shows
// without extra software. Axes get round tick values (1-2-5 steps; decades on log axes,
// with 2 and 5 labelled when the range is short); every series has its own colour and
// marker, the legend lists each once, and a caption line says what produced the figure.
import Foundation

public struct SVGPlot {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var dashed: Bool
        /// Draw the polyline through the points (false: markers only).
        public var line: Bool
        /// Draw a marker at each point (always when `line` is false).
        public var markers: Bool
        /// Optional text beside each point (same count as `points`).
        public var labels: [String]?
        /// Grey, thin and unlisted unless named: reference lines such as a Pareto front.
        public var muted: Bool
        public init(name: String, points: [(x: Double, y: Double)], dashed: Bool = false, line: Bool = true,
                    markers: Bool = true, labels: [String]? = nil, muted: Bool = false) {
            self.name = name; self.points = points; self.dashed = dashed; self.line = line
            self.markers = markers || !line; self.labels = labels; self.muted = muted
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX: Bool
    public var logY = false
    public var series: [Series]
    /// One line under the plot: model, stages, clock, link model...
    public var caption: String?
    public var width = 820.0, height = 480.0
    /// Horizontal reference lines (value, label), drawn dashed in grey.
    public var hLines: [(y: Double, label: String)] = []
    /// Points above this value are left off (say so in the caption).
    public var yMax: Double?
    /// With more labelled points than this, each point carries a number (1, 2, … in series
    /// order) and a key under the plot names it: long labels no longer find room beside
    /// crowded points, numbers do.
    public var numberLabelsAbove = 12

    public init(title: String, xLabel: String, yLabel: String, logX: Bool = false, series: [Series], caption: String? = nil) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.logX = logX; self.series = series
        self.caption = caption
    }

    /// Colours (Okabe–Ito and Tableau, distinguishable in print) and markers: series i gets
    /// colour i mod 8 and marker (i / 8) mod 5 plus i mod 5, so no two of the first 40 repeat.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B"]
    static let shapes = ["circle", "square", "triangle", "diamond", "cross"]
    static func style(_ i: Int) -> (color: String, shape: String) {
        (palette[i % palette.count], shapes[(i + i / palette.count) % shapes.count])
    }

    /// Round tick values from at or below `lo` to at or above `hi` (1-2-5 steps, about `target` of them).
    static func niceTicks(_ lo: Double, _ hi: Double, target: Int = 6) -> [Double] {
        guard hi > lo else { return [lo] }
        let raw = (hi - lo) / Double(max(1, target - 1))
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        let first = (lo / step + 1e-9).rounded(.down), last = (hi / step - 1e-9).rounded(.up)
        return stride(from: first, through: last, by: 1).map { $0 * step }
    }

    /// Ticks of a log axis over [lo, hi] (values, not logs): decades, and 2 and 5 times
    /// each decade when the range spans fewer than three decades.
    static func logTicks(_ lo: Double, _ hi: Double) -> [Double] {
        let e0 = Int(floor(log10(lo))), e1 = Int(ceil(log10(hi)))
        func ticks(_ mults: [Double]) -> [Double] {
            var out: [Double] = []
            for e in e0...e1 { for m in mults { let v = m * pow(10, Double(e)); if v >= lo * 0.999 && v <= hi * 1.001 { out.append(v) } } }
            return out
        }
        let out = ticks(e1 - e0 <= 3 ? [1, 2, 5] : [1])
        return out.count >= 3 ? out : ticks([1, 1.5, 2, 3, 4, 5, 6, 8])  // less than a decade: finer steps
    }

    /// Splits `text` at spaces into lines of at most `columns` characters (a longer word
    /// stands alone on its line).
    static func wrap(_ text: String, columns: Int) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            if !line.isEmpty && line.count + 1 + word.count > columns { lines.append(line); line = String(word) }
            else { line += (line.isEmpty ? "" : " ") + word }
        }
        if !line.isEmpty || lines.isEmpty { lines.append(line) }
        return lines
    }

    /// Dash patterns of the reference lines, in `hLines` order (solid, dashed, dotted, …), so the
    /// legend tells them apart.
    static let referenceDashes = ["", " stroke-dasharray=\"7,3\"", " stroke-dasharray=\"1.5,2.5\"", " stroke-dasharray=\"7,3,1.5,3\""]

    public func render() -> String {
        // The legend column is as wide as its longest entry.
        let longest = (series.filter { !($0.muted && $0.name.isEmpty) }.map(\.name) + hLines.map(\.label)).map(\.count).max() ?? 10
        let left = 72.0, right = max(160.0, 52 + 6.6 * Double(longest)), top = 42.0
        let width = max(self.width, left + 500 + right)
        // The caption wraps at the figure's width (about 6.2 px per character at 10.5 px).
        let captionLines = caption.map { Self.wrap($0, columns: Int((width - left - 12) / 6.2)) } ?? []
        // Numbered points: the key lists "n label" in columns across the figure's width.
        let keyed = series.flatMap { ser in zip(ser.points, ser.labels ?? []).map(\.1) }
        let numbered = keyed.count > numberLabelsAbove
        let keyColumn = 30 + 6.2 * Double(keyed.map(\.count).max() ?? 0)
        let keyColumns = max(1, Int((width - left - 12) / keyColumn))
        let keyRows = numbered ? (keyed.count + keyColumns - 1) / keyColumns : 0
        let keyHeight = numbered ? 14 * Double(keyRows) + 8 : 0
        let bottom = 58.0 + keyHeight + 15 * Double(captionLines.count) + (captionLines.isEmpty ? 0 : 5)
        // Tall enough for every legend entry.
        let entries = series.filter { !($0.muted && $0.name.isEmpty) }.count + hLines.count
        let height = max(self.height, top + 24 + 19 * Double(entries) + bottom)
        let pw = width - left - right, ph = height - top - bottom
        func shown(_ p: (x: Double, y: Double)) -> Bool {
            p.x.isFinite && p.y.isFinite && (!logX || p.x > 0) && (!logY || p.y > 0) && p.y <= (yMax ?? .infinity)
        }
        let all = series.flatMap(\.points).filter(shown)
        let ys = all.map(\.y) + hLines.map(\.y)
        // Axis ranges: log axes span whole tick values, linear ones round outwards.
        // Nothing to show: an empty frame (a log axis over one decade).
        var xr = (all.map(\.x).min() ?? (logX ? 1 : 0), all.map(\.x).max() ?? (logX ? 10 : 1))
        var yr = (ys.min() ?? (logY ? 1 : 0), ys.max() ?? (logY ? 10 : 1))
        func widen(_ r: inout (Double, Double), log: Bool) {
            let nonNegative = r.0 >= 0
            if r.1 - r.0 <= abs(r.1) * 1e-9 { r = log ? (r.0 / 2, r.1 * 2) : (r.0 - 0.5, r.1 + 0.5) }
            if log { r = (r.0 / 1.15, r.1 * 1.15) } else { let p = (r.1 - r.0) * 0.04; r = (r.0 - p, r.1 + p) }
            // A linear axis of values that are not negative (times, losses) does not go below zero.
            if !log && nonNegative { r.0 = max(0, r.0) }
        }
        widen(&xr, log: logX); widen(&yr, log: logY)
        let xt = logX ? Self.logTicks(xr.0, xr.1) : Self.niceTicks(xr.0, xr.1)
        let yt = logY ? Self.logTicks(yr.0, yr.1) : Self.niceTicks(yr.0, yr.1)
        if !logX, let a = xt.first, let b = xt.last { xr = (min(xr.0, a), max(xr.1, b)) }
        if !logY, let a = yt.first, let b = yt.last { yr = (min(yr.0, a), max(yr.1, b)) }
        func tx(_ v: Double) -> Double { logX ? log10(v) : v }
        func ty(_ v: Double) -> Double { logY ? log10(v) : v }
        func px(_ x: Double) -> Double { left + (tx(x) - tx(xr.0)) / (tx(xr.1) - tx(xr.0)) * pw }
        func py(_ y: Double) -> Double { top + (1 - (ty(y) - ty(yr.0)) / (ty(yr.1) - ty(yr.0))) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(left + pw / 2))" y="24" text-anchor="middle" font-size="15">\(Self.esc(title))</text>

        """
        for v in yt {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(py(v)))\" y2=\"\(f(py(v)))\" stroke=\"#e4e4e4\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(Self.tick(v, logY))</text>\n"
        }
        for v in xt {
            s += "<line x1=\"\(f(px(v)))\" x2=\"\(f(px(v)))\" y1=\"\(f(top))\" y2=\"\(f(top + ph))\" stroke=\"#e4e4e4\"/>"
            s += "<text x=\"\(f(px(v)))\" y=\"\(f(top + ph + 17))\" text-anchor=\"middle\">\(Self.tick(v, logX))</text>\n"
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#444\"/>\n"
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(top + ph + 38))\" text-anchor=\"middle\">\(Self.esc(xLabel))</text>\n"
        s += "<text transform=\"translate(18,\(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.esc(yLabel))</text>\n"
        var legend = 0
        // Reference levels: grey across the plot, each its own dash pattern, named in the legend (not over the data).
        for (i, h) in hLines.enumerated() {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(py(h.y)))\" y2=\"\(f(py(h.y)))\" stroke=\"#777\"\(Self.referenceDashes[i % Self.referenceDashes.count])/>\n"
        }
        let legendRefs = hLines
        var styleIndex = 0
        var placedLabels: [(x: Double, y: Double, w: Double)] = []
        var keyColors: [String] = []  // the colour of each numbered point's series, in key order
        // Every marker drawn, so labels keep off other points where they can.
        let markerSpots = series.filter { $0.markers && !$0.muted }.flatMap { $0.points.filter(shown).map { (x: px($0.x), y: py($0.y)) } }
        var nextNumber = 1
        for ser in series {
            let pts = ser.points.filter(shown)
            let (color, shape): (String, String)
            if ser.muted { (color, shape) = ("#999999", "circle") } else { (color, shape) = Self.style(styleIndex); styleIndex += 1 }
            let dash = ser.dashed ? " stroke-dasharray=\"6,4\"" : ""
            if ser.line && !pts.isEmpty {
                let path = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(ser.muted ? 1.2 : 2)\"\(dash) points=\"\(path)\"/>\n"
            }
            if ser.markers && !ser.muted {
                for p in pts { s += Self.marker(shape, px(p.x), py(p.y), color) }
            }
            if let labels = ser.labels {
                for (p, name) in zip(ser.points, labels) {
                    let l = numbered ? String(nextNumber) : name
                    if numbered { nextNumber += 1; keyColors.append(color) }
                    guard shown(p) else { continue }
                    // Right of the point, else left of it when it would leave the plot; moved
                    // down or up past labels already placed so none overprints another. One
                    // line away at most on the point's own row; further (up to four lines) with
                    // a leader line back to the point, so a crowded label still names its point.
                    // With no free place at all the label is left out (the tables carry it).
                    let w = 6.2 * Double(l.count), x0 = px(p.x), y0 = py(p.y)
                    let rightFits = x0 + 7 + w <= left + pw, leftFits = x0 - 7 - w >= left
                    let sides = rightFits ? (leftFits ? [false, true] : [false]) : [true]
                    var candidates: [(toLeft: Bool, dy: Double)] = []
                    for side in sides { for dy in [0.0, 13, -13] { candidates.append((side, dy)) } }
                    for dy in [26.0, -26, 39, -39, 52, -52] { for side in sides { candidates.append((side, dy)) } }
                    func fits(_ c: (toLeft: Bool, dy: Double), clearOfMarkers: Bool) -> Bool {
                        let bx = c.toLeft ? x0 - 7 - w : x0 + 7, y = y0 - 6 + c.dy
                        return y - 10 >= top && y <= top + ph
                            && !placedLabels.contains { abs($0.y - y) < 11 && $0.x < bx + w && bx < $0.x + $0.w }
                            && !(clearOfMarkers && markerSpots.contains { $0.x + 5 > bx && $0.x - 5 < bx + w && $0.y + 5 > y - 10 && $0.y - 5 < y })
                    }
                    let free = candidates.first { fits($0, clearOfMarkers: true) } ?? candidates.first { fits($0, clearOfMarkers: false) }
                    guard let free else { continue }
                    let (toLeft, dy) = free
                    let by = y0 - 6 + dy
                    placedLabels.append((toLeft ? x0 - 7 - w : x0 + 7, by, w))
                    if abs(dy) > 13 {
                        let lx = toLeft ? x0 - 6 : x0 + 6, ly = by - 4
                        s += "<line x1=\"\(f(x0))\" y1=\"\(f(y0))\" x2=\"\(f(lx))\" y2=\"\(f(ly))\" stroke=\"#999\" stroke-width=\"0.7\"/>"
                    }
                    s += "<text x=\"\(f(toLeft ? x0 - 7 : x0 + 7))\" y=\"\(f(by))\"\(toLeft ? " text-anchor=\"end\"" : "") font-size=\"10.5\" fill=\"#333\">\(Self.esc(l))</text>"
                }
            }
            if ser.muted && ser.name.isEmpty { continue }
            let ly = top + 12 + Double(legend) * 19
            legend += 1
            let lx = left + pw + 14
            if ser.line { s += "\n<line x1=\"\(f(lx))\" x2=\"\(f(lx + 26))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>" }
            if ser.markers && !ser.muted { s += Self.marker(shape, lx + 13, ly - 4, color) }
            s += "<text x=\"\(f(lx + 32))\" y=\"\(f(ly))\">\(Self.esc(ser.name))</text>\n"
        }
        for (i, h) in legendRefs.enumerated() {
            let ly = top + 12 + Double(legend) * 19, lx = left + pw + 14
            legend += 1
            s += "<line x1=\"\(f(lx))\" x2=\"\(f(lx + 26))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"#777\"\(Self.referenceDashes[i % Self.referenceDashes.count])/>"
            s += "<text x=\"\(f(lx + 32))\" y=\"\(f(ly))\" fill=\"#444\">\(Self.esc(h.label))</text>\n"
        }
        if numbered {
            // Column-major, like a table read down: 1, 2, 3 … in the first column.
            for (n, name) in keyed.enumerated() {
                let col = n / keyRows, row = n % keyRows
                let x = left + Double(col) * keyColumn, y = top + ph + 58 + 14 * Double(row)
                s += "<text x=\"\(f(x + 18))\" y=\"\(f(y))\" text-anchor=\"end\" font-size=\"10.5\" font-weight=\"bold\" fill=\"\(keyColors[n])\">\(n + 1)</text>"
                s += "<text x=\"\(f(x + 23))\" y=\"\(f(y))\" font-size=\"10.5\" fill=\"#333\">\(Self.esc(name))</text>\n"
            }
        }
        for (i, line) in captionLines.enumerated() {
            let y = height - 12 - 15 * Double(captionLines.count - 1 - i)
            s += "<text x=\"\(f(left))\" y=\"\(f(y))\" font-size=\"10.5\" fill=\"#555\">\(Self.esc(line))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    static func marker(_ shape: String, _ x: Double, _ y: Double, _ color: String) -> String {
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let r = 4.5
        switch shape {
        case "square":
            return "<rect x=\"\(f(x - r + 0.5))\" y=\"\(f(y - r + 0.5))\" width=\"\(f(2 * r - 1))\" height=\"\(f(2 * r - 1))\" fill=\"\(color)\"/>"
        case "triangle":
            return "<polygon points=\"\(f(x)),\(f(y - r - 0.5)) \(f(x - r)),\(f(y + r - 0.5)) \(f(x + r)),\(f(y + r - 0.5))\" fill=\"\(color)\"/>"
        case "diamond":
            return "<polygon points=\"\(f(x)),\(f(y - r - 1)) \(f(x + r)),\(f(y)) \(f(x)),\(f(y + r + 1)) \(f(x - r)),\(f(y))\" fill=\"\(color)\"/>"
        case "cross":
            return "<path d=\"M\(f(x - r)),\(f(y - r))L\(f(x + r)),\(f(y + r))M\(f(x - r)),\(f(y + r))L\(f(x + r)),\(f(y - r))\" stroke=\"\(color)\" stroke-width=\"2.2\"/>"
        default:
            return "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"\(f(r))\" fill=\"\(color)\"/>"
        }
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// A compact tick label: round numbers stay round; SI suffixes for large values.
    static func tick(_ v: Double, _ log: Bool = false) -> String {
        let a = abs(v)
        func g(_ x: Double) -> String {
            var t = String(format: "%.3g", x)
            if t.contains("e") { t = String(format: "%.0f", x) }
            return t
        }
        if a >= 1e9 { return g(v / 1e9) + "G" }
        if a >= 1e6 { return g(v / 1e6) + "M" }
        if a >= 1e4 { return g(v / 1e3) + "k" }
        return g(v)
    }
}
