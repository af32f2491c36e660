namespace SimKO.Data;

/// <summary>
/// Input that cannot be used as given. The message names the file, the row (line number for JSONL,
/// element index for JSON, row index for Parquet), the field and what was expected, e.g.
/// <c>math500/test.jsonl:12: field 'answer' is missing; the row has: problem, solution</c>.
/// </summary>
public sealed class DataFormatException : Exception
{
    /// <summary>The file (or <c>stdin</c>) the problem is in.</summary>
    public string File { get; }
    /// <summary>Where in the file: <c>12</c> for a line, <c>examples[3]</c>, <c>row 7</c>; null for the whole file.</summary>
    public string? Location { get; }
    /// <summary>The field concerned, or null.</summary>
    public string? Field { get; }
    /// <summary>What was wrong, without the location prefix.</summary>
    public string Reason { get; }

    /// <summary>An error at <paramref name="file"/> (and <paramref name="location"/> in it, if known) about
    /// <paramref name="field"/> (if any); <paramref name="reason"/> says what was wrong and what was expected.</summary>
    public DataFormatException(string file, string? location, string? field, string reason, Exception? inner = null)
        : base(Format(file, location, reason), inner)
    {
        File = file; Location = location; Field = field; Reason = reason;
    }

    internal static string Format(string file, string? location, string reason) =>
        location is null ? $"{file}: {reason}"
        : location.Length > 0 && char.IsDigit(location[0]) ? $"{file}:{location}: {reason}"
        : $"{file}: {location}: {reason}";
}
