namespace SimKO.Host.Diagnostics;

/// <summary>This process's memory as the kernel counts it (resident set size and its high-water
/// mark, Linux /proc): read by the trainer's step metrics and by the benchmarks. A GPU run adds
/// the device's own counters; on the CPU this is the whole story.</summary>
public static class ProcessMemory
{
    /// <summary>Resident set size now and its peak (bytes), from /proc/self/status (Linux).</summary>
    public static (long Rss, long Peak) Read()
    {
        if (!File.Exists("/proc/self/status")) return (Environment.WorkingSet, Environment.WorkingSet);
        long rss = 0, peak = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:")) rss = ParseKb(line);
            else if (line.StartsWith("VmHWM:")) peak = ParseKb(line);
        }
        return (rss, peak);
    }

    /// <summary>Reset the kernel's peak-RSS counter (Linux: clear_refs 5), so the next peak is this phase's own.</summary>
    public static bool ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Bytes of a /proc status line such as <c>VmHWM:\t  123456 kB</c>; the kernel pads with a tab
    /// and spaces, and a large value leaves no space after the tab.</summary>
    public static long ParseKb(string line)
    {
        var fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 2 || !long.TryParse(fields[1], out var kb))
            throw new FormatException($"unexpected /proc status line '{line}' (expected 'Name: <n> kB')");
        return kb * 1024;
    }
}
