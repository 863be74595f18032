{{ featurekit.online_table(ref('login_activity', v=1)) }}
