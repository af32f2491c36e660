namespace SimKO.Data.Tokenizers;

/// <summary>
/// The GPT-2 byte ↔ character table of byte-level BPE: printable bytes stand for themselves,
/// the other 68 map to U+0100 upwards in byte order (so a space is 'Ġ', a newline 'Ċ').
/// </summary>
public static class ByteLevel
{
    static readonly char[] byteToChar = new char[256];
    static readonly Dictionary<char, byte> charToByte = new();

    static ByteLevel()
    {
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            byteToChar[b] = printable ? (char)b : (char)(256 + next++);
            charToByte[byteToChar[b]] = (byte)b;
        }
    }

    /// <summary>The byte-level spelling of a UTF-8 string (how vocab entries are written).</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = byteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>Appends the bytes a vocab entry stands for; false if it has a character outside the table.</summary>
    public static bool TryAppendBytes(string token, List<byte> into)
    {
        foreach (var c in token)
        {
            if (!charToByte.TryGetValue(c, out var b)) return false;
            into.Add(b);
        }
        return true;
    }
}
