using SkiaSharp;

namespace SimKO.Host.Reporting;

/// <summary>One named line of a chart: x and y values of equal length, drawn in order.</summary>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y, IReadOnlyList<double>? Spread = null);

/// <summary>
/// Small PNG charts (line charts and histograms) drawn with SkiaSharp: enough for pass@K curves,
/// Λ^(k) over training steps and entropy histograms, with axes, ticks, a title and a legend.
/// Files are written atomically.
/// </summary>
public static class Plot
{
    static readonly SKColor[] Palette =
    [
        new(0x1f, 0x77, 0xb4), new(0xd6, 0x27, 0x28), new(0x2c, 0xa0, 0x2c), new(0xff, 0x7f, 0x0e),
        new(0x94, 0x67, 0xbd), new(0x8c, 0x56, 0x4b), new(0xe3, 0x77, 0xc2), new(0x7f, 0x7f, 0x7f),
    ];

    const int Width = 900, Height = 560, Left = 80, Right = 200, Top = 50, Bottom = 60;

    /// <summary>A line chart. <paramref name="logX"/> draws x on a log2 axis (pass@K curves).</summary>
    public static void Lines(string path, string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logX = false)
    {
        var all = series.Where(s => s.X.Count > 0).ToList();
        if (all.Count == 0) throw new ArgumentException($"plot '{title}': no data to draw");
        Func<double, double> fx = logX ? x => System.Math.Log2(System.Math.Max(x, 1e-12)) : x => x;
        double xMin = all.Min(s => s.X.Min(fx)), xMax = all.Max(s => s.X.Max(fx));
        double yMin = all.Min(s => s.Y.Select((y, i) => y - (s.Spread?[i] ?? 0)).Min());
        double yMax = all.Max(s => s.Y.Select((y, i) => y + (s.Spread?[i] ?? 0)).Max());
        Pad(ref xMin, ref xMax); Pad(ref yMin, ref yMax);
        Draw(path, title, xLabel, yLabel, xMin, xMax, yMin, yMax, logX, (canvas, map) =>
        {
            for (int i = 0; i < all.Count; i++)
            {
                var s = all[i];
                var color = Palette[i % Palette.Length];
                if (s.Spread is { } spread)
                {
                    using var band = new SKPath();
                    for (int j = 0; j < s.X.Count; j++) { var p = map(fx(s.X[j]), s.Y[j] + spread[j]); if (j == 0) band.MoveTo(p); else band.LineTo(p); }
                    for (int j = s.X.Count - 1; j >= 0; j--) band.LineTo(map(fx(s.X[j]), s.Y[j] - spread[j]));
                    band.Close();
                    using var fill = new SKPaint { Color = color.WithAlpha(50), Style = SKPaintStyle.Fill, IsAntialias = true };
                    canvas.DrawPath(band, fill);
                }
                using var paint = new SKPaint { Color = color, StrokeWidth = 2.5f, Style = SKPaintStyle.Stroke, IsAntialias = true };
                using var line = new SKPath();
                for (int j = 0; j < s.X.Count; j++) { var p = map(fx(s.X[j]), s.Y[j]); if (j == 0) line.MoveTo(p); else line.LineTo(p); }
                canvas.DrawPath(line, paint);
                if (s.X.Count <= 20)
                {
                    using var dot = new SKPaint { Color = color, Style = SKPaintStyle.Fill, IsAntialias = true };
                    for (int j = 0; j < s.X.Count; j++) canvas.DrawCircle(map(fx(s.X[j]), s.Y[j]), 3.5f, dot);
                }
            }
        }, all.Select(s => s.Name).ToList(), logX ? (Func<double, string>)(v => System.Math.Pow(2, v).ToString("0.#")) : null);
    }

    /// <summary>Overlaid histograms (same bins for every series), drawn as step outlines.</summary>
    public static void Histograms(string path, string title, string xLabel, IReadOnlyList<(string Name, double[] Values)> data, int bins = 40, bool logY = true)
    {
        var nonEmpty = data.Where(d => d.Values.Length > 0).ToList();
        if (nonEmpty.Count == 0) throw new ArgumentException($"plot '{title}': no data to draw");
        double lo = nonEmpty.Min(d => d.Values.Min()), hi = nonEmpty.Max(d => d.Values.Max());
        if (hi <= lo) hi = lo + 1;
        double width = (hi - lo) / bins;
        var counts = nonEmpty.Select(d =>
        {
            var c = new double[bins];
            foreach (var v in d.Values) c[System.Math.Clamp((int)((v - lo) / width), 0, bins - 1)]++;
            return c.Select(x => x / d.Values.Length).ToArray();
        }).ToList();
        Func<double, double> fy = logY ? y => System.Math.Log10(System.Math.Max(y, 1e-5)) : y => y;
        double yMin = logY ? -5 : 0, yMax = counts.Max(c => c.Max(fy));
        Pad(ref yMin, ref yMax);
        double xMin = lo, xMax = hi;
        Draw(path, title, xLabel, logY ? "fraction of tokens (log10)" : "fraction of tokens", xMin, xMax, yMin, yMax, false, (canvas, map) =>
        {
            for (int i = 0; i < counts.Count; i++)
            {
                using var paint = new SKPaint { Color = Palette[i % Palette.Length], StrokeWidth = 2f, Style = SKPaintStyle.Stroke, IsAntialias = true };
                using var step = new SKPath();
                step.MoveTo(map(lo, yMin));
                for (int b = 0; b < bins; b++)
                {
                    var y = fy(counts[i][b]);
                    step.LineTo(map(lo + b * width, y));
                    step.LineTo(map(lo + (b + 1) * width, y));
                }
                step.LineTo(map(hi, yMin));
                canvas.DrawPath(step, paint);
            }
        }, nonEmpty.Select(d => d.Name).ToList(), null);
    }

    static void Pad(ref double lo, ref double hi)
    {
        if (!double.IsFinite(lo) || !double.IsFinite(hi)) { lo = 0; hi = 1; return; }
        if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; return; }
        var pad = (hi - lo) * 0.05;
        lo -= pad; hi += pad;
    }

    static void Draw(string path, string title, string xLabel, string yLabel, double xMin, double xMax, double yMin, double yMax,
        bool logX, Action<SKCanvas, Func<double, double, SKPoint>> body, IReadOnlyList<string> legend, Func<double, string>? xTickText)
    {
        var info = new SKImageInfo(Width, Height);
        using var surface = SKSurface.Create(info);
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        float plotW = Width - Left - Right, plotH = Height - Top - Bottom;
        SKPoint Map(double x, double y) => new(
            Left + (float)((x - xMin) / (xMax - xMin) * plotW),
            Top + plotH - (float)((y - yMin) / (yMax - yMin) * plotH));
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1.2f, Style = SKPaintStyle.Stroke, IsAntialias = true };
        using var grid = new SKPaint { Color = new SKColor(0xe0, 0xe0, 0xe0), StrokeWidth = 1f, Style = SKPaintStyle.Stroke };
        // ticks and grid
        foreach (var (v, i) in Ticks(xMin, xMax, logX).Select((v, i) => (v, i)))
        {
            var p = Map(v, yMin);
            canvas.DrawLine(p.X, Top, p.X, Top + plotH, grid);
            var label = xTickText?.Invoke(v) ?? Format(v);
            Text(canvas, label, p.X, Top + plotH + 18, SKTextAlign.Center, 13, false);
        }
        foreach (var v in Ticks(yMin, yMax, false))
        {
            var p = Map(xMin, v);
            canvas.DrawLine(Left, p.Y, Left + plotW, p.Y, grid);
            Text(canvas, Format(v), Left - 6, p.Y + 4, SKTextAlign.Right, 13, false);
        }
        canvas.DrawRect(Left, Top, plotW, plotH, axis);
        canvas.Save();
        canvas.ClipRect(new SKRect(Left, Top, Left + plotW, Top + plotH));
        body(canvas, Map);
        canvas.Restore();
        Legend(canvas, legend);
        Text(canvas, title, Left + plotW / 2, Top - 18, SKTextAlign.Center, 17, true);
        Text(canvas, xLabel, Left + plotW / 2, Height - 15, SKTextAlign.Center, 13, false);
        canvas.Save();
        canvas.RotateDegrees(-90, 18, Top + plotH / 2);
        Text(canvas, yLabel, 18, Top + plotH / 2, SKTextAlign.Center, 13, false);
        canvas.Restore();
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.Write(path, s => png.SaveTo(s));
    }

    static void Legend(SKCanvas canvas, IReadOnlyList<string> names)
    {
        float x = Width - Right + 15, y = Top + 10;
        for (int i = 0; i < names.Count; i++)
        {
            using var paint = new SKPaint { Color = Palette[i % Palette.Length], StrokeWidth = 3f, IsAntialias = true };
            canvas.DrawLine(x, y + i * 22, x + 24, y + i * 22, paint);
            Text(canvas, names[i], x + 30, y + i * 22 + 4, SKTextAlign.Left, 13, false);
        }
    }

    static void Text(SKCanvas canvas, string s, float x, float y, SKTextAlign align, float size, bool bold)
    {
        using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true, TextSize = size, TextAlign = align, FakeBoldText = bold };
        canvas.DrawText(s, x, y, paint);
    }

    static IEnumerable<double> Ticks(double lo, double hi, bool integers)
    {
        if (integers)
        {
            for (var v = System.Math.Ceiling(lo); v <= hi; v++) yield return v;
            yield break;
        }
        var raw = (hi - lo) / 6;
        var mag = System.Math.Pow(10, System.Math.Floor(System.Math.Log10(raw)));
        var step = new[] { 1.0, 2.0, 5.0, 10.0 }.Select(m => m * mag).First(s => s >= raw);
        for (var v = System.Math.Ceiling(lo / step) * step; v <= hi + 1e-12; v += step) yield return System.Math.Abs(v) < step * 1e-9 ? 0 : v;
    }

    static string Format(double v) => System.Math.Abs(v) >= 1000 || (System.Math.Abs(v) < 0.01 && v != 0) ? v.ToString("0.##e0") : v.ToString("0.###");
}
