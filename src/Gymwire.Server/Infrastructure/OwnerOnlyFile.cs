namespace Gymwire.Infrastructure;

/// <summary>
/// Files that hold secrets (the SQLite database and its companions, the key-encryption key) are readable and writable
/// by their owner only (0600). The mode is set explicitly after the file exists, so it does not depend on the process's
/// umask. Windows has no such mode bits; there the directory's ACL decides.
/// </summary>
public static class OwnerOnlyFile
{
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Whether <paramref name="mode"/> lets anyone but the owner read or write.</summary>
    public static bool IsTooOpen(UnixFileMode mode) =>
        (mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0;

    /// <summary>Sets an existing file to 0600; a file that does not exist is left alone.</summary>
    public static void Restrict(string path)
    {
        if (OperatingSystem.IsWindows() || !File.Exists(path))
        {
            return;
        }
        if (File.GetUnixFileMode(path) != Mode)
        {
            File.SetUnixFileMode(path, Mode);
        }
    }

    /// <summary>
    /// Creates <paramref name="path"/> with <paramref name="contents"/>, 0600 from its first byte on, unless it exists:
    /// false then, and the file is left as it is. The contents are written to a temporary file first and moved into
    /// place without replacing, so a process reading the file never sees it half-written and two processes creating
    /// it at once end up with one file.
    /// </summary>
    public static bool TryCreate(string path, string contents)
    {
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = Mode;
        }
        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(stream.SafeFileHandle, Mode);
                }
                using var writer = new StreamWriter(stream);
                writer.Write(contents);
                writer.Flush();
                stream.Flush(flushToDisk: true);
            }
            try
            {
                File.Move(temporary, path, overwrite: false);
                return true;
            }
            catch (IOException) when (File.Exists(path))
            {
                return false;
            }
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }
}
