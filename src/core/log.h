/*
 * Logging to stderr, one line per event, which spawn-fcgi/systemd send to a
 * file or the journal.  Never pass secrets, SQL or request bodies here.
 */
#ifndef CD_LOG_H
#define CD_LOG_H

void	 log_init(const char *program);
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_error(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif
