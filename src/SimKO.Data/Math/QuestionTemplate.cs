using System.Text;

namespace SimKO.Data.Math;

/// <summary>
/// A question built from several fields of a row: text with field names in braces, e.g. SVAMP's
/// <c>"{Body} {Question}"</c>; <c>{{</c> and <c>}}</c> write a literal brace. Parsed once
/// (<see cref="Parse"/>, whose errors name the character), then filled for each row by
/// <see cref="Datasets.LoadFile"/>, where a field that is missing or of the wrong type is an error
/// naming the file, the line and the field.
/// </summary>
public sealed class QuestionTemplate
{
    /// <summary>One piece of the template: literal text, or the name of a field.</summary>
    readonly record struct Part(string Text, bool IsField);

    readonly Part[] parts;

    /// <summary>The template as written.</summary>
    public string Text { get; }

    /// <summary>The fields it names, each once, in order of first use (at least one).</summary>
    public IReadOnlyList<string> Fields { get; }

    QuestionTemplate(string text, Part[] parts)
    {
        Text = text;
        this.parts = parts;
        Fields = parts.Where(p => p.IsField).Select(p => p.Text).Distinct().ToArray();
    }

    /// <summary>Parses <paramref name="text"/>; throws a <see cref="DatasetException"/> for an unclosed
    /// or stray brace, an empty <c>{}</c>, a brace inside a field name, or a template that names no field.</summary>
    public static QuestionTemplate Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string Error(string what) => $"question template \"{text}\": {what}";
        var parts = new List<Part>();
        var literal = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '}')
            {
                if (i + 1 < text.Length && text[i + 1] == '}') { literal.Append('}'); i++; continue; }
                throw new DatasetException(Error($"'}}' at character {i + 1} closes no field; write '}}}}' for a literal brace"));
            }
            if (c != '{') { literal.Append(c); continue; }
            if (i + 1 < text.Length && text[i + 1] == '{') { literal.Append('{'); i++; continue; }
            int close = text.IndexOfAny(['{', '}'], i + 1);
            if (close < 0 || text[close] == '{')
                throw new DatasetException(Error($"'{{' at character {i + 1} is not closed; write '{{{{' for a literal brace"));
            var name = text[(i + 1)..close];
            if (name.Trim().Length == 0)
                throw new DatasetException(Error($"'{{}}' at character {i + 1} names no field"));
            if (literal.Length > 0) { parts.Add(new Part(literal.ToString(), false)); literal.Clear(); }
            parts.Add(new Part(name, true));
            i = close;
        }
        if (literal.Length > 0) parts.Add(new Part(literal.ToString(), false));
        if (!parts.Any(p => p.IsField))
            throw new DatasetException(Error("names no field; write field names in braces, e.g. \"{Body} {Question}\""));
        return new QuestionTemplate(text, parts.ToArray());
    }

    /// <summary>The question for one row: each field replaced by <paramref name="valueOf"/>(field),
    /// which throws when the row has no usable value.</summary>
    public string Fill(Func<string, string> valueOf)
    {
        var sb = new StringBuilder();
        foreach (var p in parts) sb.Append(p.IsField ? valueOf(p.Text) : p.Text);
        return sb.ToString();
    }

    public override string ToString() => Text;
}
