namespace Gymwire.Features.Classes;

/// <summary>Scheduling classes: used by the API and the demo.</summary>
public static class ClassService
{
    public static void AddClass(GymwireDbContext db, ClassSchedule c)
    {
        db.ClassSchedules.Add(c);
        db.AddEvent(c.GymId, EventCatalog.ClassScheduled, new
        {
            schedule_id = c.Id, title = c.Title, discipline = c.Discipline, day_of_week = c.DayOfWeek,
            start_time = FormatTime(c.StartTime),
        }, c.CreatedAt);
    }

    public static string FormatTime(TimeOnly t) => t.ToString("HH:mm", CultureInfo.InvariantCulture);
}
