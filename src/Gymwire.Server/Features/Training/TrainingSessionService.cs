namespace Gymwire.Features.Training;

/// <summary>Logging training sessions: used by the API and the demo.</summary>
public static class TrainingSessionService
{
    public static void AddSession(GymwireDbContext db, TrainingSession session)
    {
        db.TrainingSessions.Add(session);
        db.AddEvent(session.GymId, EventCatalog.SessionLogged, new
        {
            user_id = session.UserId, session_id = session.Id, session_type = session.SessionType,
            date = session.Date, duration_mins = session.DurationMins,
        }, session.CreatedAt);
    }
}
